/**
 * A lock file for the directory store's head compare-and-set, safe across processes: created with
 * `open(path, 'wx')` (O_CREAT|O_EXCL), so exactly one process holds it.
 *
 * Stale locks: the critical section is a read and an atomic rename (milliseconds), so a lock is stale when
 * - its holder ran on this host and that pid no longer exists (detected at once), or
 * - it is older than `staleMs` (default 30 s; a holder on another host that crashed).
 * A stale lock is broken by renaming it aside (atomic: one breaker wins) and checking the renamed file is the
 * one judged stale; if a fresh lock was taken in between, it is put back with link (which never overwrites).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { BankLockTimeoutError } from './errors.js';

export const DEFAULT_STALE_LOCK_MS = 30_000;
export const DEFAULT_LOCK_TIMEOUT_MS = 15_000;

export interface FileLockOptions {
  /** A lock older than this is broken (default 30 s). */
  staleMs?: number;
  /** Give up waiting for a live holder after this long (default 15 s). */
  timeoutMs?: number;
}

interface LockContent {
  pid: number;
  host: string;
  token: string;
  acquiredAt: string;
}

/** Runs `fn` while holding the lock at `lockPath`. `fn` is synchronous so the lock is held as briefly as possible. */
export async function withFileLock<T>(lockPath: string, fn: () => T, opts: FileLockOptions = {}): Promise<T> {
  const token = await acquire(lockPath, opts);
  try {
    return fn();
  } finally {
    release(lockPath, token);
  }
}

async function acquire(lockPath: string, opts: FileLockOptions): Promise<string> {
  const staleMs = opts.staleMs ?? DEFAULT_STALE_LOCK_MS;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const token = randomBytes(12).toString('hex');
  const content: LockContent = {
    pid: process.pid,
    host: os.hostname(),
    token,
    acquiredAt: new Date().toISOString(),
  };
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(lockPath, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (fd !== undefined) {
      try {
        fs.writeSync(fd, JSON.stringify(content));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return token;
    }
    const seen = inspect(lockPath);
    if (seen && isStale(seen, staleMs)) {
      breakLock(lockPath, seen.raw);
      continue;
    }
    if (Date.now() > deadline) {
      throw new BankLockTimeoutError(lockPath, seen ? describeHolder(seen) : 'an unknown process', timeoutMs);
    }
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 50);
  }
}

interface SeenLock {
  raw: string;
  content: LockContent | null;
  ageMs: number;
}

function inspect(lockPath: string): SeenLock | null {
  try {
    const st = fs.statSync(lockPath);
    const raw = fs.readFileSync(lockPath, 'utf8');
    let content: LockContent | null = null;
    try {
      content = JSON.parse(raw) as LockContent;
    } catch {
      // The holder has created the file but not written it yet, or it crashed in between: age decides.
    }
    return { raw, content, ageMs: Date.now() - st.mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function isStale(seen: SeenLock, staleMs: number): boolean {
  if (seen.ageMs > staleMs) return true;
  const c = seen.content;
  return c !== undefined && c !== null && typeof c.pid === 'number' && localHolderGone(c.host, c.pid);
}

/**
 * Whether a holder (of a lock file, of a coordinator lease) ran on this host under a pid that no longer exists:
 * it crashed or was killed, so what it holds can be taken at once. Another host's holder is never judged here.
 */
export function localHolderGone(host: string, pid: number): boolean {
  if (host !== os.hostname() || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code !== 'EPERM';
  }
}

function breakLock(lockPath: string, judgedRaw: string): void {
  const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
  try {
    fs.renameSync(lockPath, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else broke or released it
    throw e;
  }
  try {
    const raw = fs.readFileSync(aside, 'utf8');
    if (raw !== judgedRaw) {
      // Between our look and the rename, the stale lock was replaced by a live one: give it back.
      try {
        fs.linkSync(aside, lockPath);
      } catch {
        // A third process holds the lock now; the one we moved was taken after ours was judged, rare enough
        // to accept (its holder's release will find a foreign token and leave the current lock alone).
      }
    }
  } finally {
    fs.rmSync(aside, { force: true });
  }
}

function release(lockPath: string, token: string): void {
  try {
    const raw = fs.readFileSync(lockPath, 'utf8');
    // Only remove our own lock: if ours was broken as stale, the file now belongs to someone else.
    if ((JSON.parse(raw) as LockContent).token === token) fs.rmSync(lockPath, { force: true });
  } catch {
    // Already gone or replaced by an unreadable newer lock: nothing of ours to remove.
  }
}

function describeHolder(seen: SeenLock): string {
  const c = seen.content;
  if (!c) return `an unidentified writer (lock age ${Math.round(seen.ageMs)} ms)`;
  return `pid ${c.pid} on ${c.host} since ${c.acquiredAt}`;
}
