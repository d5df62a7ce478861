/**
 * Unlabelled text from the demo generator, for span-corruption pretraining of the tiny backbone. It uses the same
 * vocabulary and sentence shapes as the tasks and states facts the way ordinary text would ("so the review is
 * positive", "three plus four is seven"), so a model pretrained on it knows the language the prompts must steer.
 * It is drawn from its own stream (seed, 'plain-text'), independent of the task splits.
 */
import { pick, randInt, rngFor } from '../rng.js';
import {
  generateArithmetic,
  generateCountQa,
  generateEntailment,
  generateParaphrase,
  generateQa,
  generateSentiment,
  generateTopic,
} from './skills.js';

export interface PlainTextOptions {
  seed?: number;
  /** Number of passages (each one to three sentences). */
  count: number;
}

export function demoPlainText(options: PlainTextOptions): string[] {
  const rng = rngFor(options.seed ?? 0, 'plain-text');
  const out: string[] = [];
  for (let i = 0; i < options.count; i++) {
    const kind = randInt(rng, 9);
    switch (kind) {
      case 0: {
        const domain = pick(rng, ['movie', 'product', 'restaurant']);
        const s = generateSentiment(rng, domain, pick(rng, ['positive', 'negative'] as const));
        const verdict =
          domain === 'restaurant'
            ? `overall it was ${s.label === 'positive' ? 'good' : 'bad'} .`
            : `so the review is ${s.label} .`;
        out.push(`${s.roles.text} ${verdict}`);
        break;
      }
      case 1: {
        const s = generateEntailment(rng, pick(rng, ['entailment', 'neutral', 'contradiction'] as const));
        const h = (s.roles.hypothesis as string).replace(/ \.$/, '');
        const link =
          s.label === 'entailment'
            ? `so it is true that ${h} .`
            : s.label === 'contradiction'
              ? `so it is false that ${h} .`
              : `maybe ${h} .`;
        out.push(`${s.roles.premise} ${link}`);
        break;
      }
      case 2: {
        const s = generateParaphrase(rng, pick(rng, ['same', 'different'] as const));
        out.push(
          s.label === 'same' ? `${s.roles.first} in other words ${s.roles.second}` : `${s.roles.first}`,
        );
        break;
      }
      case 3: {
        const s = generateQa(rng);
        out.push(s.roles.context as string);
        break;
      }
      case 4: {
        const s = generateArithmetic(rng);
        const q = s.roles.question as string;
        out.push(
          q.startsWith('what is ')
            ? `${q.slice('what is '.length, -2)} is ${s.label} .`
            : `${q} the answer is ${s.label} .`,
        );
        break;
      }
      case 5: {
        const topic = pick(rng, ['sports', 'weather', 'music', 'science', 'cooking']);
        const s = generateTopic(rng, topic);
        out.push(`${s.roles.text} this is about ${topic} .`);
        break;
      }
      case 6: {
        const s = generateCountQa(rng);
        out.push(`${s.roles.context} ${s.roles.question} the answer is ${s.label} .`);
        break;
      }
      default: {
        out.push(generateEntailment(rng, 'entailment').roles.premise as string);
        break;
      }
    }
  }
  return out;
}
