/**
 * A separate process committing to a directory bank, for the cross-process race tests.
 * argv: ROOT JOB MODE ARG
 *   MODE once PARENT BARRIER: wait for the file BARRIER to exist, commit once on PARENT, print the outcome.
 *   MODE loop N: commit N versions, each on the current head, retrying on conflict; print ids and conflicts.
 */
import * as fs from 'node:fs';
import { BankConflictError, DirectoryStore, PromptBank } from '../../src/bank/index.js';

const [root, job, mode, arg, barrier] = process.argv.slice(2) as [string, string, string, string, string?];
const bank = new PromptBank(new DirectoryStore(root));
const seed = process.pid;
const data = (i: number) => new Float32Array([seed, i, Math.random()]);

if (mode === 'once') {
  while (!fs.existsSync(barrier as string)) await new Promise((r) => setTimeout(r, 1));
  try {
    const m = await bank.commit({
      job,
      parent: arg,
      step: 1,
      method: 'race',
      tensors: { p: { shape: [3], data: data(0) } },
    });
    process.stdout.write(`${JSON.stringify({ won: m.id })}\n`);
  } catch (e) {
    if (!(e instanceof BankConflictError)) throw e;
    process.stdout.write(
      `${JSON.stringify({ lost: e.attempted, expected: e.expected, actual: e.actual })}\n`,
    );
  }
} else {
  const ids: string[] = [];
  let conflicts = 0;
  for (let i = 0; i < Number(arg); i++) {
    for (;;) {
      const head = await bank.head(job);
      try {
        const m = await bank.commit({
          job,
          parent: head?.id ?? null,
          step: (head?.step ?? 0) + 1,
          method: 'race',
          tensors: { p: { shape: [3], data: data(i) } },
        });
        ids.push(m.id);
        break;
      } catch (e) {
        if (!(e instanceof BankConflictError)) throw e;
        conflicts++;
      }
    }
  }
  process.stdout.write(`${JSON.stringify({ ids, conflicts })}\n`);
}
