"""Reference ids from Hugging Face's `tokenizers` library for tokenizer.json variants of one Unigram model.

Usage: python3 hf_tokenizers_reference.py BASE_TOKENIZER_JSON LINES_JSON OUT_DIR
BASE_TOKENIZER_JSON is promptmesh's tokenizer.json for a SentencePiece model (vocabulary, added tokens and the
model's precompiled charsmap are taken from it). Each variant is built here with the library's own classes,
saved by the library to OUT_DIR/<name>/tokenizer.json, and its ids for every line (</s> appended) are written
to OUT_DIR/<name>.ids.json. Exit status 3 when `tokenizers` is not installed.
"""
import base64
import json
import sys

try:
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers as N, pre_tokenizers as P, processors
    from tokenizers.models import Unigram
except ImportError:
    sys.exit(3)

base_file, lines_file, out_dir = sys.argv[1:4]
base = json.load(open(base_file, encoding='utf-8'))
vocab = [tuple(v) for v in base['model']['vocab']]
charsmap = b''
for n in (base['normalizer'] or {}).get('normalizers', []):
    if n['type'] == 'Precompiled':
        charsmap = base64.b64decode(n['precompiled_charsmap'])
eos = next(t for t in base['added_tokens'] if t['content'] == '</s>')['id']


def metaspace(scheme='always'):
    return P.Metaspace(replacement='\u2581', prepend_scheme=scheme, split=True)


VARIANTS = {
    # What transformers' SpmConverter writes for a T5 spiece.model.
    'converter': (
        N.Sequence([N.Precompiled(charsmap), N.Strip(left=False, right=True), N.Replace(Regex(' {2,}'), '\u2581')]),
        metaspace(),
    ),
    # The layout the issue names: NFKC, then runs of spaces collapsed.
    'nfkc_replace': (N.Sequence([N.NFKC(), N.Replace(Regex(' {2,}'), ' ')]), metaspace()),
    'nfc': (N.NFC(), metaspace()),
    'nfd_strip_accents_lowercase': (N.Sequence([N.NFD(), N.StripAccents(), N.Lowercase()]), metaspace()),
    'nfkd_strip': (N.Sequence([N.NFKD(), N.Strip()]), P.Sequence([P.WhitespaceSplit(), metaspace()])),
    'nmt_nfkc_lowercase': (
        N.Sequence([N.Nmt(), N.NFKC(), N.Lowercase(), N.Replace(Regex(' {2,}'), ' '), N.Strip()]),
        metaspace('first'),
    ),
    # Precompiled not first, so SentencePiece cannot express it: runs with the library's own semantics.
    'replace_precompiled': (
        N.Sequence([N.Replace('``', '"'), N.Replace("''", '"'), N.Precompiled(charsmap), N.Prepend('\u2581')]),
        P.Metaspace(replacement='\u2581', prepend_scheme='never', split=True),
    ),
}

lines = json.load(open(lines_file, encoding='utf-8'))
for name, (normalizer, pre_tokenizer) in VARIANTS.items():
    tok = Tokenizer(Unigram(vocab, unk_id=base['model']['unk_id'], byte_fallback=base['model'].get('byte_fallback', False)))
    tok.add_tokens([AddedToken(t['content'], normalized=False, special=t['special']) for t in base['added_tokens']])
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(single=['$A', '</s>'], special_tokens=[('</s>', eos)])
    import os

    os.makedirs(f'{out_dir}/{name}', exist_ok=True)
    tok.save(f'{out_dir}/{name}/tokenizer.json')
    ids = [e.ids for e in tok.encode_batch(lines)]
    json.dump(ids, open(f'{out_dir}/{name}.ids.json', 'w'))
