// Small text rules shared by the program (config.ts, components/) and the hooks, so that both
// sides accept and produce exactly the same forms.

/** Quotes a word for /bin/sh unless it is plainly safe (`{rev}` alone is not brace-expanded). */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:./{}-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

const DURATION = /^(\d+)(us|ms|s|min|h|d)?$/;
const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** PostgreSQL's largest timeout (INT_MAX ms, about 24.8 days), also the largest delay a Node
 * timer takes: a longer one would fire at once. */
const MAX_DURATION_MS = 2 ** 31 - 1;

/** A positive PostgreSQL duration setting such as `5s` or `30min` (a bare number is ms), in
 * milliseconds; undefined when malformed, zero (0 would turn lock_timeout off) or over 24 days. */
export function pgDurationMs(text: string): number | undefined {
  const m = DURATION.exec(text);
  const ms = m ? Number(m[1]) * UNIT_MS[m[2] ?? "ms"] : 0;
  return ms > 0 && ms <= MAX_DURATION_MS ? ms : undefined;
}

/** A size for people: 1.5 MiB. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
