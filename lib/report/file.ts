// Writing the report page: atomically, and checked up front so that a command
// that trains for hours before writing can refuse a bad path before it starts.
import * as fs from 'fs';
import * as path from 'path';

/** Writes `text` to a temporary file next to `file`, then renames it into place. */
export function writeFileAtomic(file: string, text: string): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw err;
  }
}

/**
 * Why writeFileAtomic(file) would fail, as far as can be told before writing:
 * its folder is missing, not a folder or not writable, or `file` is a folder.
 * Undefined when the path looks writable.
 */
export function unwritablePathReason(file: string): string | undefined {
  const resolved = path.resolve(file);
  const dir = path.dirname(resolved);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    return `folder ${dir} does not exist`;
  }
  if (!stat.isDirectory()) return `${dir} is not a folder`;
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    return `folder ${dir} is not writable`;
  }
  if (fs.existsSync(resolved) && fs.statSync(resolved).isDirectory()) return `${resolved} is a folder`;
  return undefined;
}
