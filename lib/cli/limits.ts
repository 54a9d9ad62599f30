// Upper bounds of the CLI's size options, checked when the command line is
// parsed, so a value the library would refuse only after the data has loaded
// (or a layer no machine could hold) is a usage error naming the flag.
// --epochs and --batch-size take what fit() takes (MAX_EPOCHS, MAX_BATCH_SIZE).
export { MAX_BATCH_SIZE, MAX_EPOCHS } from '../sequential';

/**
 * Units of one hidden layer. The library takes up to 2^24, but two hidden layers of 65536 units
 * already hold 2^32 weights, 48 GiB with their gradients and momentum in float32.
 */
export const MAX_HIDDEN_UNITS = 65536;
