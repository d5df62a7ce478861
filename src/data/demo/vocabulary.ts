/**
 * The demo suite's closed vocabulary (a few hundred lower-case words). Every generated sentence uses only these,
 * the label words and punctuation, so a small SentencePiece model covers it and a tiny T5 can learn it.
 */

export const PEOPLE = [
  'man',
  'woman',
  'boy',
  'girl',
  'doctor',
  'teacher',
  'farmer',
  'chef',
  'pilot',
  'student',
];
export const ANIMALS = ['dog', 'cat', 'horse', 'bird', 'rabbit', 'fox'];
/** Generalisations used by entailment: every person is a person, every animal an animal. */
export const AGENT_CATEGORY: Readonly<Record<string, string>> = Object.fromEntries([
  ...PEOPLE.map((p) => [p, 'person']),
  ...ANIMALS.map((a) => [a, 'animal']),
]);
export const AGENTS = [...PEOPLE, ...ANIMALS];

export const FRUITS = ['apple', 'pear', 'banana', 'orange', 'plum', 'lemon'];
export const TOYS = ['ball', 'kite', 'doll', 'drum', 'puzzle', 'robot'];
export const TOOLS = ['hammer', 'brush', 'rope', 'shovel', 'ladder', 'bucket'];
export const OBJECT_CATEGORY: Readonly<Record<string, string>> = Object.fromEntries([
  ...FRUITS.map((f) => [f, 'fruit']),
  ...TOYS.map((t) => [t, 'toy']),
  ...TOOLS.map((t) => [t, 'tool']),
]);
export const OBJECTS = [...FRUITS, ...TOYS, ...TOOLS];

export const AGENT_ADJECTIVES = ['tall', 'small', 'old', 'young', 'happy', 'tired', 'quiet', 'busy'];
export const COLORS = ['red', 'blue', 'green', 'yellow', 'black', 'white', 'brown', 'pink'];
export const PLACES = [
  'park',
  'kitchen',
  'garden',
  'school',
  'market',
  'forest',
  'house',
  'yard',
  'beach',
  'barn',
];
/** Present participles with a synonym each, for paraphrase. */
export const VERBS: Readonly<Record<string, string>> = {
  holding: 'carrying',
  watching: 'observing',
  washing: 'cleaning',
  painting: 'coloring',
  finding: 'discovering',
  selling: 'trading',
  buying: 'purchasing',
  throwing: 'tossing',
};
export const VERB_LIST = Object.keys(VERBS);
export const NOUN_SYNONYMS: Readonly<Record<string, string>> = {
  man: 'gentleman',
  woman: 'lady',
  boy: 'lad',
  girl: 'lass',
  doctor: 'physician',
  teacher: 'tutor',
  student: 'pupil',
  farmer: 'grower',
};
export const ADJ_SYNONYMS: Readonly<Record<string, string>> = {
  tall: 'high',
  small: 'little',
  old: 'elderly',
  young: 'youthful',
  happy: 'glad',
  tired: 'sleepy',
  quiet: 'silent',
  busy: 'occupied',
};

export const NAMES = [
  'anna',
  'tom',
  'maria',
  'sam',
  'lena',
  'omar',
  'kim',
  'paul',
  'nora',
  'ivan',
  'rosa',
  'ben',
];

export const NUMBER_WORDS = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
  'thirteen',
  'fourteen',
  'fifteen',
  'sixteen',
  'seventeen',
  'eighteen',
  'nineteen',
  'twenty',
];
export const COUNTABLES = [
  'apples',
  'books',
  'coins',
  'shells',
  'stamps',
  'cards',
  'cups',
  'eggs',
  'pens',
  'stones',
];

/** Sentiment: aspects per domain, and polar adjectives. */
export const DOMAIN_ASPECTS: Readonly<Record<string, readonly string[]>> = {
  movie: ['film', 'plot', 'acting', 'ending', 'music', 'dialogue', 'story', 'cast', 'script', 'camera work'],
  restaurant: [
    'food',
    'soup',
    'service',
    'waiter',
    'dessert',
    'bread',
    'wine',
    'menu',
    'kitchen staff',
    'salad',
  ],
  product: [
    'phone',
    'battery',
    'screen',
    'price',
    'camera',
    'charger',
    'case',
    'speaker',
    'design',
    'manual',
  ],
};
export const POSITIVE_ADJECTIVES = [
  'great',
  'wonderful',
  'excellent',
  'lovely',
  'superb',
  'charming',
  'fresh',
  'brilliant',
];
export const NEGATIVE_ADJECTIVES = [
  'awful',
  'terrible',
  'boring',
  'dull',
  'poor',
  'bland',
  'horrible',
  'weak',
];
export const NEUTRAL_FILLERS = [
  'i went there on a monday',
  'we saw it with friends',
  'it was my second time',
  'my sister came along',
  'the place was full',
  'it took about two hours',
];

/** Topic classification: words that only occur with one topic. */
export const TOPIC_WORDS: Readonly<Record<string, readonly string[]>> = {
  sports: ['team', 'goal', 'match', 'coach', 'player', 'score', 'league', 'stadium'],
  weather: ['rain', 'storm', 'wind', 'cloud', 'snow', 'sunshine', 'fog', 'thunder'],
  music: ['song', 'band', 'guitar', 'concert', 'singer', 'piano', 'album', 'melody'],
  science: ['experiment', 'lab', 'cell', 'planet', 'theory', 'atom', 'telescope', 'data'],
  cooking: ['recipe', 'oven', 'pan', 'flour', 'sauce', 'butter', 'spoon', 'dough'],
};
export const TOPICS = Object.keys(TOPIC_WORDS);
export const TOPIC_FRAMES = [
  'yesterday the {a} and the {b} were in the news',
  'everyone talked about the {a} after the {b}',
  'the {a} was new but the {b} was old',
  'people say the {a} changed the {b}',
  'we read about the {a} and the {b} today',
];
