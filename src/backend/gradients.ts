/**
 * tfjs-core's Node bundle registers kernels but not their gradients, and its ESM `register_all_gradients` cannot be
 * imported by Node (extensionless specifiers). The @tensorflow/tfjs bundle registers every gradient into the
 * process-global registry that tfjs-core's engine reads, so importing it once is enough.
 */
import '@tensorflow/tfjs';
