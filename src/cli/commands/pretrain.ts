import fs from 'node:fs';
import path from 'node:path';

import { currentBackend, selectBackend } from '../../backend/index.js';
import { DEFAULT_DEMO_SEED, DEMO_LABEL_WORDS, demoTaskNames } from '../../data/demo/index.js';
import { loadT5Checkpoint, writeT5Checkpoint } from '../../model/checkpoint/index.js';
import { loadTokenizer, type Tokenizer, writeTokenizerJson } from '../../model/tokenizer/index.js';
import {
  type BackboneShape,
  demoPretrainText,
  demoSourcePairs,
  demoSourceProbe,
  pretrainBackbone,
  type SupervisedPair,
  splitLabelWords,
  spmTrainArgs,
  trainSentencePiece,
} from '../../train/pretrain/index.js';
import { TerminalProgress } from '../../train/progress.js';
import {
  type CliCommand,
  type CliContext,
  optInt,
  optNumber,
  optString,
  requireString,
  UsageError,
} from '../command.js';

/** The shipped assets/demo-backbone was produced with exactly these defaults. */
export const PRETRAIN_DEFAULTS = {
  variant: 'v1.1' as 'v1' | 'v1.1',
  dModel: 64,
  dKv: 16,
  numHeads: 4,
  dFf: 256,
  numLayers: 2,
  numDecoderLayers: 2,
  buckets: 32,
  maxDistance: 128,
  vocabSize: 1000,
  steps: 5000,
  batchSize: 16,
  lr: 3e-3,
  warmup: 100,
  clip: 1.0,
  seed: DEFAULT_DEMO_SEED,
  textCount: 30000,
  chunkTokens: 48,
  maxSourceTokens: 96,
  supervisedFraction: 0.6,
  sourceExamples: 3000,
  prefixLmFraction: 0.25,
  lossWeighting: 'example' as 'token' | 'example',
  probeEvery: 500,
  probeExamples: 100,
};

const D = PRETRAIN_DEFAULTS;

function positiveInt(ctx: CliContext, name: string, fallback: number): number {
  const v = optInt(ctx, name, fallback)!;
  if (v < 1) throw new UsageError(`--${name} must be a positive integer, got ${v}`);
  return v;
}

function readTextFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--text ${file}: cannot read it (${(err as Error).message})`);
  }
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new UsageError(`--text ${file}: the file has no non-empty lines`);
  return lines;
}

/** `demo-nli=3,demo-qa=2` -> { 'demo-nli': 3, 'demo-qa': 2 }. */
function parseSourceWeights(spec: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (spec === undefined || spec.trim() === '') return out;
  for (const part of spec.split(',')) {
    const m = /^\s*([A-Za-z0-9_-]+)\s*=\s*([0-9.]+)\s*$/.exec(part);
    const w = m ? Number(m[2]) : Number.NaN;
    if (!m || !(w >= 0) || !Number.isFinite(w)) {
      throw new UsageError(
        `--source-weights expects TASK=W pairs such as demo-nli=3,demo-qa=2; got '${part}'`,
      );
    }
    out[m[1]!] = w;
  }
  const known = demoTaskNames('source');
  const unknown = Object.keys(out).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new UsageError(
      `--source-weights: unknown demo source task(s) ${unknown.join(', ')}; known: ${known.join(', ')}`,
    );
  }
  return out;
}

/** The pretrain.json of a folder a run continues from, so the record keeps the whole recipe. */
function readPreviousRecord(dir: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'pretrain.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

export const command: CliCommand = {
  path: ['pretrain'],
  summary: 'Pretrain a small T5 from scratch (span corruption + source-task mixture) and save a HF folder',
  usage:
    '--out DIR [--steps N] [--batch-size N] [--lr X] [--seed N] [--d-model N ...] [--text FILE] [--tokenizer DIR]',
  description: `
Trains a fresh T5 (all weights) with T5's span-corruption objective (15% of the tokens in spans of mean length 3,
each span replaced by <extra_id_N>) on text, and writes a Hugging Face folder (config.json, model.safetensors,
spiece.model, tokenizer.json, pretrain.json) that every other promptmesh command loads with --checkpoint.

A share of each batch (--prefix-lm-fraction) is prefix language modelling instead (input: the start of a passage,
target: the rest), as in the "LM-adapted" T5 that Lester et al. found prompt tuning needs: a span-corruption-only
decoder always starts with a sentinel, so there is no first word for a prompt to steer.

Without --text the text is the demo generator's plain text; a share of each batch (--supervised-fraction) is
supervised examples of the demo SOURCE tasks, as T5 itself was pretrained on a multi-task mixture. The demo target
tasks are never used. Without --tokenizer a SentencePiece Unigram model is trained on the same text with spm_train
(Debian/Ubuntu: apt-get install sentencepiece). The defaults reproduce the shipped assets/demo-backbone.`,
  examples: [
    'promptmesh pretrain --out ./demo-backbone',
    'promptmesh pretrain --out ./bigger --d-model 128 --d-ff 512 --steps 4000',
    'promptmesh pretrain --out ./mine --text corpus.txt --supervised-fraction 0 --vocab-size 8000',
  ],
  options: [
    { name: 'out', short: 'o', type: 'string', value: 'DIR', description: 'output folder (created)' },
    { name: 'steps', type: 'string', value: 'N', description: `updates (default ${D.steps})` },
    {
      name: 'batch-size',
      type: 'string',
      value: 'N',
      description: `examples per update (default ${D.batchSize})`,
    },
    { name: 'lr', type: 'string', value: 'X', description: `peak AdamW learning rate (default ${D.lr})` },
    {
      name: 'warmup',
      type: 'string',
      value: 'N',
      description: `linear warm-up updates (default ${D.warmup})`,
    },
    {
      name: 'seed',
      type: 'string',
      value: 'N',
      description: `seed for init, text, data order (default ${D.seed})`,
    },
    { name: 'variant', type: 'string', value: 'v1|v1.1', description: `T5 variant (default ${D.variant})` },
    { name: 'd-model', type: 'string', value: 'N', description: `hidden size (default ${D.dModel})` },
    { name: 'd-kv', type: 'string', value: 'N', description: `size per head (default ${D.dKv})` },
    { name: 'heads', type: 'string', value: 'N', description: `attention heads (default ${D.numHeads})` },
    { name: 'd-ff', type: 'string', value: 'N', description: `feed-forward size (default ${D.dFf})` },
    { name: 'layers', type: 'string', value: 'N', description: `encoder layers (default ${D.numLayers})` },
    {
      name: 'decoder-layers',
      type: 'string',
      value: 'N',
      description: `decoder layers (default ${D.numDecoderLayers})`,
    },
    {
      name: 'vocab-size',
      type: 'string',
      value: 'N',
      description: `SentencePiece pieces before the 100 <extra_id_N> (default ${D.vocabSize}; a small corpus may give fewer)`,
    },
    {
      name: 'text',
      type: 'string',
      value: 'FILE',
      description: 'pretraining text, one passage per line (default: generated demo text)',
    },
    {
      name: 'text-count',
      type: 'string',
      value: 'N',
      description: `passages of generated demo text (default ${D.textCount})`,
    },
    {
      name: 'init',
      type: 'string',
      value: 'DIR',
      description:
        'continue from the weights (and tokenizer) of this folder, e.g. a previous run, instead of a fresh model; shape options are then ignored, and another --seed draws new batches',
    },
    {
      name: 'tokenizer',
      type: 'string',
      value: 'DIR',
      description: 'use this tokenizer (folder with spiece.model/tokenizer.json) instead of training one',
    },
    {
      name: 'supervised-fraction',
      type: 'string',
      value: 'X',
      description: `share of each batch drawn from the demo source tasks (default ${D.supervisedFraction}; 0: none)`,
    },
    {
      name: 'source-examples',
      type: 'string',
      value: 'N',
      description: `supervised examples per demo source task (default ${D.sourceExamples}, the suite's training split; more are drawn from the same generators, never repeating the suite's validation or test examples)`,
    },
    {
      name: 'source-weights',
      type: 'string',
      value: 'TASK=W,...',
      description:
        'relative share of each demo source task among the supervised examples, e.g. demo-nli=3,demo-arithmetic=2 (tasks not named: 1; default: every example equally likely)',
    },
    {
      name: 'prefix-lm-fraction',
      type: 'string',
      value: 'X',
      description: `share of each batch that is prefix LM on a passage, as T5 LM-adapted (default ${D.prefixLmFraction})`,
    },
    {
      name: 'chunk-tokens',
      type: 'string',
      value: 'N',
      description: `tokens per text chunk (default ${D.chunkTokens})`,
    },
    {
      name: 'probe-every',
      type: 'string',
      value: 'N',
      description: `measure source-task validation accuracy every N updates and at the end (default ${D.probeEvery}; 0: only at the end; demo text only)`,
    },
    {
      name: 'probe-examples',
      type: 'string',
      value: 'N',
      description: `validation examples per source task in each probe (default ${D.probeExamples})`,
    },
    { name: 'backend', type: 'string', value: 'NAME', description: 'auto, node-gpu, node, wasm or cpu' },
  ],
  async run(ctx) {
    const out = requireString(ctx, 'out');
    const variant = optString(ctx, 'variant') ?? D.variant;
    if (variant !== 'v1' && variant !== 'v1.1')
      throw new UsageError(`--variant must be v1 or v1.1, got '${variant}'`);
    const shape: BackboneShape = {
      variant,
      dModel: positiveInt(ctx, 'd-model', D.dModel),
      dKv: positiveInt(ctx, 'd-kv', D.dKv),
      numHeads: positiveInt(ctx, 'heads', D.numHeads),
      dFf: positiveInt(ctx, 'd-ff', D.dFf),
      numLayers: positiveInt(ctx, 'layers', D.numLayers),
      numDecoderLayers: positiveInt(ctx, 'decoder-layers', D.numDecoderLayers),
      relativeAttentionNumBuckets: D.buckets,
      relativeAttentionMaxDistance: D.maxDistance,
    };
    const steps = positiveInt(ctx, 'steps', D.steps);
    const batchSize = positiveInt(ctx, 'batch-size', D.batchSize);
    const lr = optNumber(ctx, 'lr', D.lr)!;
    if (!(lr > 0)) throw new UsageError(`--lr must be > 0, got ${lr}`);
    const warmup = optInt(ctx, 'warmup', Math.min(D.warmup, Math.floor(steps / 10)))!;
    if (warmup < 0) throw new UsageError(`--warmup must be 0 or more, got ${warmup}`);
    const seed = optInt(ctx, 'seed', D.seed)!;
    const vocabSize = positiveInt(ctx, 'vocab-size', D.vocabSize);
    const chunkTokens = positiveInt(ctx, 'chunk-tokens', D.chunkTokens);
    const supervisedFraction = optNumber(ctx, 'supervised-fraction', D.supervisedFraction)!;
    if (!(supervisedFraction >= 0 && supervisedFraction <= 1)) {
      throw new UsageError(`--supervised-fraction must be between 0 and 1, got ${supervisedFraction}`);
    }
    const prefixLmFraction = optNumber(ctx, 'prefix-lm-fraction', D.prefixLmFraction)!;
    if (!(prefixLmFraction >= 0 && supervisedFraction + prefixLmFraction <= 1)) {
      throw new UsageError(
        `--prefix-lm-fraction must be >= 0 and, with --supervised-fraction (${supervisedFraction}), at most 1; got ${prefixLmFraction}`,
      );
    }
    const textFile = optString(ctx, 'text');
    const initDir = optString(ctx, 'init');
    const tokenizerDir = optString(ctx, 'tokenizer') ?? initDir;
    let init: ReturnType<typeof loadT5Checkpoint> | undefined;
    if (initDir) {
      try {
        init = loadT5Checkpoint(initDir);
      } catch (err) {
        throw new UsageError(
          `--init ${initDir}: cannot load a T5 checkpoint there (${(err as Error).message})`,
        );
      }
    }
    const log = (line: string) => ctx.stderr.write(`${line}\n`);

    await selectBackend({ requested: optString(ctx, 'backend'), log });
    const texts = textFile
      ? readTextFile(textFile)
      : demoPretrainText(positiveInt(ctx, 'text-count', D.textCount), seed);
    const sourceExamples = positiveInt(ctx, 'source-examples', D.sourceExamples);
    const sourceWeights = parseSourceWeights(optString(ctx, 'source-weights'));
    let supervised: SupervisedPair[] = [];
    if (supervisedFraction > 0) {
      try {
        supervised = demoSourcePairs(DEFAULT_DEMO_SEED, sourceExamples, sourceWeights);
      } catch (err) {
        throw new UsageError(`--source-examples ${sourceExamples}: ${(err as Error).message}`);
      }
    }
    log(
      `pretrain: ${texts.length} passages${textFile ? ` from ${textFile}` : ' of demo text'}, ` +
        `${supervised.length} supervised source-task examples (fraction ${supervisedFraction})`,
    );
    fs.mkdirSync(out, { recursive: true });

    let tokenizer: Tokenizer;
    let tokenizerRecord: Record<string, unknown>;
    if (tokenizerDir) {
      tokenizer = await loadTokenizer(tokenizerDir);
      for (const f of ['spiece.model', 'tokenizer.json']) {
        const src = path.join(tokenizerDir, f);
        if (fs.existsSync(src) && path.resolve(src) !== path.resolve(out, f))
          fs.copyFileSync(src, path.join(out, f));
      }
      tokenizerRecord = { from: tokenizerDir };
    } else {
      // The tokenizer sees what the model will: the text plus the supervised sources and targets.
      const corpus = [...texts, ...supervised.map((p) => `${p.source} ${p.target}`)];
      // Label words must be single pieces (one-token targets). SentencePiece's suffix-array seeding misses many
      // whole words of this very repetitive text, so they are forced, with the word-start mark so they only match
      // at the start of a word.
      const symbols = textFile ? [] : DEMO_LABEL_WORDS.map((w) => `\u2581${w}`);
      const spmOptions = { vocabSize, seed, hardVocabLimit: false, userDefinedSymbols: symbols };
      const spmArgs = spmTrainArgs(spmOptions);
      trainSentencePiece(corpus, out, spmOptions);
      tokenizer = await loadTokenizer(path.join(out, 'spiece.model'));
      if (!textFile) {
        const split = splitLabelWords(tokenizer);
        if (split.length > 0) throw new Error(`internal: label words not single pieces: ${split.join(' ')}`);
      }
      tokenizerRecord = { spmTrain: spmArgs, corpusLines: corpus.length };
      log(
        `pretrain: trained SentencePiece model: ${tokenizer.vocabSize} ids (${tokenizer.extraIds} extra ids)`,
      );
    }
    await writeTokenizerJson(tokenizer, path.join(out, 'tokenizer.json'));

    log(
      `pretrain: backend ${currentBackend()?.name ?? '?'}, ${steps} steps of ${batchSize}, lr ${lr}, seed ${seed}`,
    );
    const progress = new TerminalProgress(ctx.stderr);
    const probeEvery = optInt(ctx, 'probe-every', D.probeEvery)!;
    if (probeEvery < 0) throw new UsageError(`--probe-every must be 0 or more, got ${probeEvery}`);
    // The probe scores the demo source tasks, which only mean something for a model trained on demo text.
    const probe = textFile
      ? undefined
      : demoSourceProbe(tokenizer, {
          seed: DEFAULT_DEMO_SEED,
          examples: positiveInt(ctx, 'probe-examples', D.probeExamples),
          maxSourceTokens: D.maxSourceTokens,
        });
    const formatScores = (scores: Record<string, number>) =>
      Object.entries(scores)
        .map(([task, acc]) => `${task.replace(/^demo-/, '')} ${(100 * acc).toFixed(1)}%`)
        .join(', ');
    const result = pretrainBackbone(tokenizer, texts, supervised, {
      shape,
      steps,
      batchSize,
      lr,
      warmupSteps: warmup,
      weightDecay: 0,
      clipNorm: D.clip,
      seed,
      chunkTokens,
      maxSourceTokens: D.maxSourceTokens,
      supervisedFraction,
      prefixLmFraction,
      lossWeighting: D.lossWeighting,
      ...(init ? { init: { config: init.config, tensors: init.tensors } } : {}),
      progress,
      ...(probe ? { probe, probeEvery } : {}),
      onProbe: (r) =>
        progress.log(`pretrain: source-task accuracy after ${r.step} updates: ${formatScores(r.scores)}`),
    });
    try {
      writeT5Checkpoint(out, result.config, result.model.exportWeights());
    } finally {
      result.model.dispose();
    }
    const tail = result.losses.slice(-50);
    const finalLoss = tail.reduce((a, b) => a + b, 0) / tail.length;
    const record = {
      command: `promptmesh pretrain ${process.argv.slice(3).join(' ')}`.trim(),
      backend: currentBackend()?.name,
      seed,
      steps,
      batchSize,
      lr,
      warmup,
      ...(init ? {} : { shape }),
      vocabSize: tokenizer.vocabSize,
      supervisedFraction,
      sourceExamples,
      ...(Object.keys(sourceWeights).length > 0 ? { sourceWeights } : {}),
      supervisedExamples: supervised.length,
      prefixLmFraction,
      lossWeighting: D.lossWeighting,
      text: textFile ?? `demo plain text, ${texts.length} passages`,
      tokenizer: tokenizerRecord,
      ...(initDir ? { init: { from: initDir, previous: readPreviousRecord(initDir) } } : {}),
      wallSeconds: Math.round(result.seconds),
      firstLoss: result.losses[0],
      finalLoss50: finalLoss,
      sourceAccuracy: result.probes,
      lossEvery100: result.losses.filter((_, i) => i % 100 === 0 || i === result.losses.length - 1),
    };
    fs.writeFileSync(path.join(out, 'pretrain.json'), `${JSON.stringify(record, null, 2)}\n`);
    log(
      `pretrain: wrote ${out} in ${Math.round(result.seconds)}s; loss ${result.losses[0]?.toFixed(3)} -> ` +
        `${finalLoss.toFixed(3)} (mean of the last ${tail.length} updates)`,
    );
    return 0;
  },
};
