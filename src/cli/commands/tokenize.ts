import { loadTokenizer } from '../../model/tokenizer/index.js';
import { type CliCommand, optBool, optInt, requireString, UsageError } from '../command.js';

export const command: CliCommand = {
  path: ['tokenize'],
  summary: 'Turn text into T5 token ids with a model folder’s tokenizer (SentencePiece-exact)',
  usage: '--tokenizer DIR [--json] [--no-eos] [--extra-ids N] TEXT [TEXT ...]',
  description: `
Loads the tokenizer of a Hugging Face T5 folder (tokenizer.json, else spiece.model) and prints the ids of each
TEXT on its own line, separated by spaces, with </s> (id 1) appended as T5 expects. The ids are the ones
SentencePiece's spm_encode gives, and the ones transformers' T5 tokenizer gives for ordinary text.
<extra_id_N> in the text becomes that sentinel's id (span-corruption inputs and targets).

With --json each TEXT gives one line {"ids":[...],"pieces":[...]}: the ids and the vocabulary piece of each
id ('▁' marks a preceding space). DIR may also name a tokenizer.json or spiece.model file directly.`,
  examples: [
    'promptmesh tokenize --tokenizer assets/demo-backbone "Hello world"',
    'promptmesh tokenize --tokenizer assets/demo-backbone --json "The <extra_id_0> walks in <extra_id_1> park"',
    'promptmesh tokenize --tokenizer assets/demo-backbone/spiece.model --no-eos "premise: A man sleeps." "hypothesis: He rests."',
  ],
  options: [
    {
      name: 'tokenizer',
      short: 't',
      type: 'string',
      value: 'DIR',
      description: 'model folder holding tokenizer.json or spiece.model (or one of those files)',
    },
    { name: 'json', type: 'boolean', description: 'print {"ids":[...],"pieces":[...]} per TEXT' },
    { name: 'no-eos', type: 'boolean', description: 'do not append </s>' },
    {
      name: 'extra-ids',
      type: 'string',
      value: 'N',
      description: 'number of <extra_id_N> sentinels after a spiece.model vocabulary (default 100)',
    },
  ],
  positionals: {
    name: 'TEXT',
    description: 'text to tokenize (quote it); several give one line each',
    min: 1,
  },
  async run(ctx) {
    const dir = requireString(ctx, 'tokenizer');
    const extraIds = optInt(ctx, 'extra-ids');
    if (extraIds !== undefined && extraIds < 0) throw new UsageError('--extra-ids must be 0 or more');
    const tokenizer = await loadTokenizer(dir, {
      ...(extraIds === undefined ? {} : { extraIds }),
      onWarning: (m) => ctx.stderr.write(`promptmesh tokenize: warning: ${m}\n`),
    });
    const addEos = !optBool(ctx, 'no-eos');
    const json = optBool(ctx, 'json');
    for (const text of ctx.positionals) {
      const ids = tokenizer.encode(text, { addEos });
      if (json) {
        ctx.stdout.write(`${JSON.stringify({ ids, pieces: ids.map((id) => tokenizer.idToPiece(id)) })}\n`);
      } else {
        ctx.stdout.write(`${ids.join(' ')}\n`);
      }
    }
    return 0;
  },
};
