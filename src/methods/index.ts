// Importing a method's folder registers it. Adding a method = adding a folder and a line here.
import './attempt/index.js';
import './prompt-tuning/index.js';
import './spt/index.js';
import './tpt/index.js';

export { type ParameterReport, parameterReport } from './accounting.js';
export {
  type EncoderInputs,
  MethodConfigError,
  type MethodContext,
  type MethodDims,
  type MethodFactory,
  type MethodInspection,
  type MethodParam,
  MethodTensorShapeError,
  type MethodTrainDefaults,
  MissingMethodTensorError,
  type ParamGroup,
  type ParamSpec,
  type PromptBatch,
  type PromptMethod,
  type QuickFlags,
} from './method.js';
export { methodFactory, methodNames, registerMethod, UnknownMethodError } from './registry.js';
export { touchedParamNames } from './touched-params.js';
