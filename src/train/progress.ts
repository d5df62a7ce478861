/** Live progress of a long job on a terminal (one rewritten line) or in a log (a line every few seconds). */
export interface ProgressSink {
  update(line: string): void;
  /** A line that stays (evaluation results, stage changes). */
  log(line: string): void;
  done(): void;
}

export class TerminalProgress implements ProgressSink {
  private last = 0;
  private pending = false;

  constructor(
    private readonly out: NodeJS.WriteStream | NodeJS.WritableStream = process.stderr,
    private readonly intervalMs = 5000,
  ) {}

  private get tty(): boolean {
    // `promptmesh up` pipes its children's stderr to a terminal and asks them to draw live lines anyway.
    return (this.out as NodeJS.WriteStream).isTTY === true || process.env.PROMPTMESH_PROGRESS === 'tty';
  }

  update(line: string): void {
    if (this.tty) {
      const width = (this.out as NodeJS.WriteStream).columns ?? Number(process.env.COLUMNS ?? 160);
      this.out.write(`\r\x1b[2K${line.slice(0, width - 1)}`);
      this.pending = true;
      return;
    }
    const now = Date.now();
    if (now - this.last >= this.intervalMs) {
      this.last = now;
      this.out.write(`${line}\n`);
    }
  }

  log(line: string): void {
    if (this.tty && this.pending) this.out.write('\r\x1b[2K');
    this.pending = false;
    this.out.write(`${line}\n`);
  }

  done(): void {
    if (this.tty && this.pending) this.out.write('\n');
    this.pending = false;
  }
}

export const silentProgress: ProgressSink = { update() {}, log() {}, done() {} };

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** What one training progress line says; every trainer (single process, coordinator, pretraining) fills it. */
export interface ProgressLine {
  /** `[stage]` prefix (the coordinator names the stage; the single-process trainer logs it before). */
  label?: string;
  /** 1-based step just done, of `steps`. */
  step: number;
  steps: number;
  loss: number;
  /** Loss per task (smoothed or not, as the caller decides). */
  tasks?: Record<string, number>;
  examplesPerSecond: number;
  /** Seconds left. */
  etaSeconds: number;
  /** Extra fields before the ETA, e.g. `2 workers, gen 3` or `elapsed 1m 2s`. */
  extra?: string[];
}

/** The one format of progress lines: `[label] step s/N loss L | task l ... | R ex/s | extra | ETA t`. */
export function formatProgressLine(p: ProgressLine): string {
  const parts = [`${p.label ? `[${p.label}] ` : ''}step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)}`];
  const tasks = Object.entries(p.tasks ?? {});
  if (tasks.length > 0) parts.push(tasks.map(([t, l]) => `${t} ${l.toFixed(3)}`).join(' '));
  parts.push(
    `${p.examplesPerSecond.toFixed(1)} ex/s`,
    ...(p.extra ?? []),
    `ETA ${formatDuration(p.etaSeconds)}`,
  );
  return parts.join(' | ');
}
