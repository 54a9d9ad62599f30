// The data sets the CLI commands train on: the bundled MNIST digits by
// default, or the train/test IDX pair in --data DIR (e.g. Debian's
// Fashion-MNIST in /usr/share/datasets/fashion-mnist).
import * as fs from 'fs';
import * as path from 'path';
import { data, type Dataset } from '../index';
import { CliError } from './args';

export interface LoadedData {
  train: Dataset;
  test: Dataset;
  /** Short name for reports: 'mnist' or the folder's name. */
  name: string;
  /** Where it came from, for the header. */
  source: string;
}

export function loadCliData(dir: string | undefined): LoadedData {
  if (dir === undefined) return { ...data.loadMnistSplits(), name: 'mnist', source: 'mnist (bundled)' };
  if (!fs.existsSync(dir)) throw new CliError(`--data ${dir}: directory not found`);
  if (!fs.statSync(dir).isDirectory()) throw new CliError(`--data ${dir}: not a directory`);
  try {
    const train = data.loadIdx(dir, { split: 'train' });
    const test = data.loadIdx(dir, { split: 'test' });
    if (train.features !== test.features) {
      throw new Error(`the train split has ${train.features} features per sample but the test split ${test.features}`);
    }
    return { train, test, name: path.basename(path.resolve(dir)), source: path.resolve(dir) };
  } catch (err) {
    throw new CliError(`--data ${dir}: ${(err as Error).message}`);
  }
}
