/**
 * One collective op as the algorithms see it: typed send/receive of float ranges to and from peers, with the op's
 * tag, per-peer message numbering, the wire encoding and chunking applied. Both sides of a transfer split a range
 * into the same chunks (a function of the range and `chunkElements` only), so message numbers line up without
 * negotiation.
 */
import { CollectiveProtocolError } from './errors.js';
import type { OpTag, Transport } from './transport.js';
import { bytesPerElement, decodeAdd, decodeCopy, encodeInto, type WireFormat } from './wire-format.js';

export class OpContext {
  private readonly sendSeq: number[] = [];
  private readonly recvSeq: number[] = [];
  readonly bytesPerElement: number;

  constructor(
    readonly transport: Transport,
    readonly tag: OpTag,
    readonly wire: WireFormat,
    /** Largest number of elements in one message. */
    readonly chunkElements: number,
  ) {
    this.bytesPerElement = bytesPerElement(wire);
  }

  get rank(): number {
    return this.transport.rank;
  }

  get worldSize(): number {
    return this.transport.worldSize;
  }

  /** Sends buf[off, off+count) as one message. The data is copied before this returns. */
  send(to: number, buf: Float32Array, off: number, count: number): Promise<void> {
    const seq = this.sendSeq[to] ?? 0;
    this.sendSeq[to] = seq + 1;
    return this.transport.send(to, this.tag, seq, count * this.bytesPerElement, (dst) =>
      encodeInto(this.wire, buf, off, count, dst),
    );
  }

  private async recvPayload(from: number, count: number, what: string): Promise<Uint8Array> {
    const seq = this.recvSeq[from] ?? 0;
    this.recvSeq[from] = seq + 1;
    const payload = await this.transport.recv(from, this.tag, seq, what);
    if (payload.length !== count * this.bytesPerElement) {
      throw new CollectiveProtocolError(
        `rank ${this.rank} expected ${count} elements (${what}, message ${seq} of step ${this.tag.step}) from ` +
          `${this.transport.describePeer(from)} but got ${payload.length} bytes: the ranks chunk the buffer differently ` +
          '(different chunkBytes or algorithm settings)',
      );
    }
    return payload;
  }

  /** Receives one message and adds it into buf[off, off+count). */
  async recvAdd(from: number, buf: Float32Array, off: number, count: number, what: string): Promise<void> {
    decodeAdd(this.wire, await this.recvPayload(from, count, what), buf, off, count);
  }

  /** Receives one message into buf[off, off+count). */
  async recvCopy(from: number, buf: Float32Array, off: number, count: number, what: string): Promise<void> {
    decodeCopy(this.wire, await this.recvPayload(from, count, what), buf, off, count);
  }

  /** Splits [off, off+count) into message-sized pieces: [offset, count] pairs. */
  chunks(off: number, count: number): [number, number][] {
    const out: [number, number][] = [];
    for (let o = 0; o < count; o += this.chunkElements)
      out.push([off + o, Math.min(this.chunkElements, count - o)]);
    return out;
  }

  async sendRange(to: number, buf: Float32Array, off: number, count: number): Promise<void> {
    for (const [o, c] of this.chunks(off, count)) await this.send(to, buf, o, c);
  }

  async recvRangeAdd(
    from: number,
    buf: Float32Array,
    off: number,
    count: number,
    what: string,
  ): Promise<void> {
    for (const [o, c] of this.chunks(off, count)) await this.recvAdd(from, buf, o, c, what);
  }

  async recvRangeCopy(
    from: number,
    buf: Float32Array,
    off: number,
    count: number,
    what: string,
  ): Promise<void> {
    for (const [o, c] of this.chunks(off, count)) await this.recvCopy(from, buf, o, c, what);
  }
}
