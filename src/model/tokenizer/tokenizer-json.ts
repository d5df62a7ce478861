/**
 * Hugging Face `tokenizer.json` (tokenizers library) for SentencePiece Unigram models, read into and written
 * from a TokenizerSpec. A file converted from a SentencePiece model (normalizer made only of `Precompiled`,
 * `Replace(" {2,}")`, `Strip`) maps onto the SentencePiece options it emulates and encodes exactly as
 * spm_encode: `Precompiled` -> charsmap, `WhitespaceSplit` or `Replace(" {2,}")` -> remove_extra_whitespaces,
 * `Metaspace` -> add_dummy_prefix + escape_whitespaces. Any other normalizer (NFKC, Lowercase, Nmt, a general
 * Replace...) cannot be expressed that way, so the file then runs with the tokenizers library's own semantics
 * (spec.hf), giving the ids Python's `tokenizers` gives. Writing produces the layout transformers' T5
 * converter produces, or re-emits the file's own normalizer and pre-tokenizer.
 */
import { TokenizerFormatError, UnsupportedTokenizerError } from './errors.js';
import { compileTextNormalizer } from './text-normalizer.js';
import type {
  HfPipelineSpec,
  NormalizerSpec,
  PieceType,
  PrependScheme,
  TokenizerSpec,
  VocabEntry,
} from './tokenizer-spec.js';
import { DEFAULT_UNK_SURFACE, EXTRA_ID_PATTERN, SPACE_SYMBOL } from './tokenizer-spec.js';

/**
 * 'sentencepiece-when-possible' (default): a file converted from a SentencePiece model encodes as that model
 * (spm_encode's ids); 'tokenizers': always as Python's `tokenizers` library encodes the file. The two differ
 * on ties between equal-scoring segmentations and on some grapheme clusters (half-width kana + voicing marks).
 */
export type TokenizerJsonSemantics = 'sentencepiece-when-possible' | 'tokenizers';

type Json = unknown;
type Obj = Record<string, Json>;

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

function isObj(v: Json): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Flattens `Sequence` wrappers (normalizers use `normalizers`, pre-tokenizers `pretokenizers`). */
function flatten(node: Json, listKey: string): Obj[] {
  if (node === null || node === undefined) return [];
  if (!isObj(node)) return [];
  if (node.type === 'Sequence' && Array.isArray(node[listKey])) {
    return (node[listKey] as Json[]).flatMap((n) => flatten(n, listKey));
  }
  return [node];
}

/** Parses tokenizer.json text; `source` names the file in errors. */
export function parseTokenizerJson(
  text: string,
  source: string,
  semantics: TokenizerJsonSemantics = 'sentencepiece-when-possible',
): TokenizerSpec {
  const format = (msg: string, field?: string): never => {
    throw new TokenizerFormatError(`${source}: ${msg}`, source, field);
  };
  const unsupported = (msg: string, field: string): never => {
    throw new UnsupportedTokenizerError(`${source}: ${msg}`, source, field);
  };
  let root: Json;
  try {
    root = JSON.parse(text);
  } catch (cause) {
    throw new TokenizerFormatError(
      `${source} is not valid JSON (${(cause as Error).message}); download it again.`,
      source,
      undefined,
      { cause },
    );
  }
  if (!isObj(root)) return format('the top level is not a JSON object');
  const model = root.model;
  if (!isObj(model)) return format('has no "model" object', 'model');
  const modelType = model.type ?? (Array.isArray(model.vocab) ? 'Unigram' : undefined);
  if (modelType !== 'Unigram') {
    return unsupported(
      `model type is ${JSON.stringify(modelType ?? null)}; only SentencePiece Unigram tokenizers (T5, mT5, ` +
        'Flan-T5) are supported. Use a T5-family checkpoint, or its spiece.model.',
      'model.type',
    );
  }
  if (!Array.isArray(model.vocab) || model.vocab.length === 0)
    return format('model.vocab is missing or empty', 'model.vocab');
  const byteFallback = model.byte_fallback === true;
  const vocab: VocabEntry[] = (model.vocab as Json[]).map((e, i) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number') {
      return format(`model.vocab[${i}] is not a [piece, score] pair`, `model.vocab[${i}]`);
    }
    const type: PieceType = byteFallback && BYTE_PIECE.test(e[0]) ? 'byte' : 'normal';
    return { piece: e[0], score: e[1], type };
  });
  const unkId = model.unk_id;
  if (typeof unkId !== 'number' || !Number.isInteger(unkId) || unkId < 0 || unkId >= vocab.length) {
    return format(`model.unk_id ${JSON.stringify(unkId)} is not an id in the vocabulary`, 'model.unk_id');
  }
  (vocab[unkId] as VocabEntry).type = 'unknown';

  const added = root.added_tokens ?? [];
  if (!Array.isArray(added)) return format('added_tokens is not an array', 'added_tokens');
  const sortedAdded = [...added].sort((a, b) => (isObj(a) && isObj(b) ? Number(a.id) - Number(b.id) : 0));
  for (const [i, t] of sortedAdded.entries()) {
    if (!isObj(t) || typeof t.id !== 'number' || typeof t.content !== 'string') {
      return format(`added_tokens[${i}] needs a numeric "id" and a string "content"`, `added_tokens[${i}]`);
    }
    if (t.id === vocab.length) vocab.push({ piece: t.content, score: 0, type: 'normal' });
    const entry = vocab[t.id];
    if (entry === undefined) {
      return format(
        `added token '${t.content}' has id ${t.id}, past the vocabulary (${vocab.length})`,
        'added_tokens',
      );
    }
    if (entry.piece !== t.content) {
      return format(
        `added token id ${t.id} is '${t.content}' but model.vocab has '${entry.piece}'`,
        'added_tokens',
      );
    }
    if (t.id === unkId) continue;
    entry.type = EXTRA_ID_PATTERN.test(t.content)
      ? 'extra_id'
      : t.special === true
        ? 'control'
        : 'user_defined';
  }

  // Normalizer.
  let charsmap = new Uint8Array(0);
  let collapse = false;
  let spmExpressible = semantics === 'sentencepiece-when-possible';
  for (const n of flatten(root.normalizer, 'normalizers')) {
    if (n.type === 'Precompiled') {
      const b64 = n.precompiled_charsmap;
      if (typeof b64 === 'string' && b64 !== '') charsmap = new Uint8Array(Buffer.from(b64, 'base64'));
    } else if (n.type === 'Replace' && isObj(n.pattern) && n.pattern.Regex === ' {2,}') {
      collapse = true;
    } else if (n.type === 'Strip') {
      // Trailing-space strip; remove_extra_whitespaces already trims.
    } else {
      spmExpressible = false;
    }
  }
  // Compiling validates every step now, so an unsupported normalizer fails at load, naming itself and the file.
  if (!spmExpressible) compileTextNormalizer(root.normalizer, source);

  // Pre-tokenizer.
  let metaspace: Obj | undefined;
  for (const p of flatten(root.pre_tokenizer, 'pretokenizers')) {
    if (p.type === 'WhitespaceSplit') collapse = true;
    else if (p.type === 'Metaspace') metaspace = p;
    else
      unsupported(
        `pre_tokenizer ${JSON.stringify(p.type)} is not supported (only Metaspace, WhitespaceSplit)`,
        'pre_tokenizer',
      );
  }
  if (metaspace === undefined) {
    return unsupported(
      'has no Metaspace pre-tokenizer, so it is not a SentencePiece-style tokenizer',
      'pre_tokenizer',
    );
  }
  const replacement = metaspace.replacement ?? SPACE_SYMBOL;
  if (replacement !== SPACE_SYMBOL) {
    return unsupported(
      `Metaspace replacement ${JSON.stringify(replacement)} is not '▁'`,
      'pre_tokenizer.replacement',
    );
  }
  let scheme: PrependScheme;
  const ps = metaspace.prepend_scheme;
  if (ps === 'always' || ps === 'first' || ps === 'never') scheme = ps;
  else if (ps === undefined || ps === null)
    scheme = metaspace.add_prefix_space === false ? 'never' : 'always';
  else
    return format(
      `Metaspace prepend_scheme ${JSON.stringify(ps)} is not always/first/never`,
      'pre_tokenizer',
    );

  const normalizer: NormalizerSpec = spmExpressible
    ? {
        name: charsmap.length > 0 ? 'precompiled' : 'identity',
        precompiledCharsmap: charsmap,
        addDummyPrefix: scheme,
        removeExtraWhitespaces: collapse,
        escapeWhitespaces: true,
      }
    : {
        name: 'tokenizers',
        precompiledCharsmap: new Uint8Array(0),
        addDummyPrefix: scheme,
        removeExtraWhitespaces: false,
        escapeWhitespaces: true,
      };
  const hf: HfPipelineSpec | undefined = spmExpressible
    ? undefined
    : {
        normalizer: root.normalizer ?? null,
        preTokenizer: root.pre_tokenizer ?? null,
        whitespaceSplit: flatten(root.pre_tokenizer, 'pretokenizers').some(
          (p) => p.type === 'WhitespaceSplit',
        ),
        splitWords: metaspace.split !== false,
      };

  const idOf = (piece: string, type: PieceType): number => {
    const id = vocab.findIndex((v) => v.piece === piece);
    return id >= 0 && vocab[id]?.type === type ? id : -1;
  };
  // eos: the special token the post-processor appends to a single sequence, else '</s>'.
  let eosId = -1;
  const pp = root.post_processor;
  if (isObj(pp) && pp.type === 'TemplateProcessing' && Array.isArray(pp.single)) {
    const last = pp.single[pp.single.length - 1];
    const name = isObj(last) && isObj(last.SpecialToken) ? last.SpecialToken.id : undefined;
    const st = isObj(pp.special_tokens) && typeof name === 'string' ? pp.special_tokens[name] : undefined;
    if (isObj(st) && Array.isArray(st.ids) && typeof st.ids[0] === 'number') eosId = st.ids[0];
  }
  if (eosId < 0) eosId = idOf('</s>', 'control');
  if (eosId < 0)
    return format("no end-of-sequence token ('</s>' in added_tokens, special)", 'post_processor');
  const padding = root.padding;
  let padId =
    isObj(padding) && typeof padding.pad_id === 'number' ? padding.pad_id : idOf('<pad>', 'control');
  if (padId < 0 || padId >= vocab.length) padId = -1;
  if (padId < 0) return format("no padding token ('<pad>' in added_tokens, special)", 'added_tokens');

  return {
    vocab,
    normalizer,
    byteFallback,
    unkId,
    eosId,
    padId,
    bosId: idOf('<s>', 'control'),
    unkSurface: DEFAULT_UNK_SURFACE,
    source,
    ...(hf ? { hf } : {}),
  };
}

/** The tokenizer.json object for a spec, in the layout transformers writes for T5. */
export function tokenizerJsonFromSpec(spec: TokenizerSpec): Obj {
  const unused = spec.vocab.findIndex((v) => v.type === 'unused');
  if (unused >= 0) {
    throw new UnsupportedTokenizerError(
      `${spec.source}: piece ${unused} ('${spec.vocab[unused]?.piece}') is UNUSED, which tokenizer.json cannot express`,
      spec.source,
      `pieces[${unused}].type`,
    );
  }
  const added = spec.vocab.flatMap((v, id) =>
    v.type === 'control' || v.type === 'unknown' || v.type === 'user_defined' || v.type === 'extra_id'
      ? [
          {
            id,
            content: v.piece,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: v.type !== 'user_defined',
          },
        ]
      : [],
  );
  const n = spec.normalizer;
  if (!n.escapeWhitespaces) {
    throw new UnsupportedTokenizerError(
      `${spec.source}: escape_whitespaces=false cannot be expressed with a Metaspace pre-tokenizer`,
      spec.source,
      'normalizer_spec.escape_whitespaces',
    );
  }
  const normalizers: Obj[] = [];
  if (n.precompiledCharsmap.length > 0) {
    normalizers.push({
      type: 'Precompiled',
      precompiled_charsmap: Buffer.from(n.precompiledCharsmap).toString('base64'),
    });
  }
  if (n.removeExtraWhitespaces)
    normalizers.push({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' });
  const metaspace = {
    type: 'Metaspace',
    replacement: SPACE_SYMBOL,
    add_prefix_space: n.addDummyPrefix !== 'never',
    prepend_scheme: n.addDummyPrefix,
    split: true,
  };
  const pretokenizers: Obj[] = n.removeExtraWhitespaces
    ? [{ type: 'WhitespaceSplit' }, metaspace]
    : [metaspace];
  const eos = spec.vocab[spec.eosId]?.piece ?? '</s>';
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: spec.hf
      ? spec.hf.normalizer
      : normalizers.length === 0
        ? null
        : { type: 'Sequence', normalizers },
    pre_tokenizer: spec.hf ? spec.hf.preTokenizer : { type: 'Sequence', pretokenizers },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: eos, type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: eos, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: eos, type_id: 0 } },
      ],
      special_tokens: { [eos]: { id: eos, ids: [spec.eosId], tokens: [eos] } },
    },
    decoder: { ...metaspace },
    model: {
      type: 'Unigram',
      unk_id: spec.unkId,
      vocab: spec.vocab.map((v) => [v.piece, v.score]),
      byte_fallback: spec.byteFallback,
    },
  };
}
