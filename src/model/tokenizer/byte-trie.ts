/**
 * A trie over UTF-8 bytes mapping each inserted key to an integer, walked one byte at a time. The Unigram
 * lattice needs every vocabulary piece that starts at a position, which is exactly a walk from the root.
 * Edges live in one open-addressing hash table of typed arrays: a Map of ~200k entries was several
 * times slower to walk.
 */
export class ByteTrie {
  private keys: Int32Array; // (parent << 8 | byte) + 1, 0 = empty slot
  private children: Int32Array;
  private mask: number;
  private edgeCount = 0;
  private values: Int32Array;
  private nodeCount = 1;

  constructor(expectedNodes = 1024) {
    let cap = 1024;
    while (cap < expectedNodes * 2) cap *= 2;
    this.keys = new Int32Array(cap);
    this.children = new Int32Array(cap);
    this.mask = cap - 1;
    this.values = new Int32Array(Math.max(16, expectedNodes)).fill(-1);
  }

  static readonly ROOT = 0;

  get size(): number {
    return this.nodeCount;
  }

  /** Inserts `key` with `value`; an existing value for the same key is replaced. */
  insert(key: Uint8Array, value: number): void {
    let node = 0;
    for (const b of key) {
      let next = this.child(node, b);
      if (next < 0) {
        next = this.addNode();
        this.addEdge(node, b, next);
      }
      node = next;
    }
    this.values[node] = value;
  }

  /** The node reached from `node` by `byte`, or -1. */
  child(node: number, byte: number): number {
    const k = ((node << 8) | byte) + 1;
    const mask = this.mask;
    let i = Math.imul(k, 0x9e3779b1) >>> 0;
    for (;;) {
      i &= mask;
      const slot = this.keys[i] as number;
      if (slot === k) return this.children[i] as number;
      if (slot === 0) return -1;
      i++;
    }
  }

  /** The value stored at `node`, or -1 when no key ends there. */
  value(node: number): number {
    return this.values[node] as number;
  }

  /** Longest key that is a prefix of buf[pos, end); returns its byte length (0 = none) and its value. */
  longestPrefix(buf: Uint8Array, pos: number, end: number): { length: number; value: number } {
    let node = 0;
    let length = 0;
    let value = -1;
    for (let i = pos; i < end; i++) {
      node = this.child(node, buf[i] as number);
      if (node < 0) break;
      const v = this.values[node] as number;
      if (v >= 0) {
        length = i - pos + 1;
        value = v;
      }
    }
    return { length, value };
  }

  private addNode(): number {
    if (this.nodeCount >= this.values.length) {
      const grown = new Int32Array(this.values.length * 2).fill(-1);
      grown.set(this.values);
      this.values = grown;
    }
    if (this.nodeCount >= 1 << 23) throw new RangeError('ByteTrie: more than 2^23 nodes');
    return this.nodeCount++;
  }

  private addEdge(node: number, byte: number, child: number): void {
    if ((this.edgeCount + 1) * 2 > this.keys.length) this.rehash(this.keys.length * 2);
    this.put(((node << 8) | byte) + 1, child);
    this.edgeCount++;
  }

  private put(k: number, child: number): void {
    const mask = this.mask;
    let i = Math.imul(k, 0x9e3779b1) >>> 0;
    for (;;) {
      i &= mask;
      if (this.keys[i] === 0) {
        this.keys[i] = k;
        this.children[i] = child;
        return;
      }
      i++;
    }
  }

  private rehash(cap: number): void {
    const oldKeys = this.keys;
    const oldChildren = this.children;
    this.keys = new Int32Array(cap);
    this.children = new Int32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i] as number;
      if (k !== 0) this.put(k, oldChildren[i] as number);
    }
  }
}
