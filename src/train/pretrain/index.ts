export { demoPretrainText, demoSourcePairs, splitLabelWords } from './demo-corpus.js';
export {
  type BackboneShape,
  type PretrainExample,
  type PretrainOptions,
  type PretrainProbeReport,
  type PretrainResult,
  type PretrainStepReport,
  packTokens,
  prefixLmExample,
  pretrainBackbone,
  type SupervisedPair,
} from './pretrain.js';
export {
  SentencePieceNotInstalledError,
  SentencePieceTrainError,
  SPM_INSTALL_HINT,
  type SpmTrainOptions,
  spmTrainArgs,
  trainSentencePiece,
} from './sentencepiece-trainer.js';
export { demoSourceProbe, type ProbeScores, type SourceProbeOptions } from './source-probe.js';
export {
  applyNoiseMask,
  type CorruptedExample,
  randomSpansNoiseMask,
  type SpanCorruptionOptions,
  spanCorrupt,
  T5_SPAN_CORRUPTION,
} from './span-corruption.js';
