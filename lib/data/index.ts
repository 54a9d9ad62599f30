// The `data` namespace of the package: loaders that return Datasets ready for model.fit().

export type { Dataset, TrainTest } from './dataset';
export type { IdxFile, LoadIdxOptions, Split } from './idx';
export type { MnistOptions, MnistSplitOptions } from './mnist';
export type { FashionMnistOptions, FashionMnistSplitOptions } from './fashion_mnist';
export { loadIdx, readIdxFile } from './idx';
export { loadMnist, loadMnistSplits } from './mnist';
export { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadFashionMnist, loadFashionMnistSplits } from './fashion_mnist';
export { mulberry32, shuffleInPlace } from './random';
