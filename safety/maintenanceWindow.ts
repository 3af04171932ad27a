// Maintenance window arithmetic, in UTC only, so a window means the same instant on every
// operator's machine. A window opens on each listed day at `start` and closes at `end`; when
// `end` is not after `start` it closes on the next day (e.g. sat 22:00 -> sun 02:00), and the
// listed day is the day it opens.

export const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
export type Day = (typeof DAYS)[number];

export interface MaintenanceWindow {
  days: Day[];
  /** UTC "HH:MM". */
  start: string;
  /** UTC "HH:MM"; not after `start` means the next day. */
  end: string;
  /** "45m", "1h30m": a deployment starts only with at least this much of the window left. */
  minRemaining?: string;
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

function minutesOf(hhmm: string): number {
  const m = HHMM.exec(hhmm);
  if (!m) throw new Error(`"${hhmm}" is not a UTC time "HH:MM"`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Checks a config value and names `key` and the fix when it is malformed. */
export function parseWindow(raw: unknown, key: string): MaintenanceWindow {
  const example = `e.g. {"days": ["sat", "sun"], "start": "22:00", "end": "02:00"} (UTC)`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(`config ${key} must be an object {days, start, end}, ${example}`);
  }
  const value = raw as Record<string, unknown>;
  if (!Array.isArray(value.days) || value.days.length === 0) {
    throw new Error(`config ${key}.days must be a non-empty list of ${DAYS.join(", ")}, ${example}`);
  }
  const days: Day[] = [];
  for (const d of value.days) {
    const day = typeof d === "string" ? d.trim().toLowerCase() : "";
    if (!(DAYS as readonly string[]).includes(day)) {
      throw new Error(`config ${key}.days has "${String(d)}"; use three-letter UTC day names ${DAYS.join(", ")}`);
    }
    if (!days.includes(day as Day)) days.push(day as Day);
  }
  for (const field of ["start", "end"] as const) {
    if (typeof value[field] !== "string" || !HHMM.test(value[field] as string)) {
      throw new Error(`config ${key}.${field} must be a UTC time "HH:MM" (00:00-23:59), got ${JSON.stringify(value[field])}; ${example}`);
    }
  }
  if (value.start === value.end) {
    throw new Error(`config ${key} has start = end (${String(value.start)}): an empty window; remove ${key} to deploy at any time`);
  }
  const window: MaintenanceWindow = { days, start: value.start as string, end: value.end as string };
  if (value.minRemaining !== undefined) {
    const minutes = typeof value.minRemaining === "string" ? durationMinutes(value.minRemaining) : undefined;
    if (minutes === undefined || minutes === 0) {
      throw new Error(`config ${key}.minRemaining must be a duration like "45m" or "1h30m", got ${JSON.stringify(value.minRemaining)}`);
    }
    if (minutes * MINUTE_MS >= durationMs(window)) {
      throw new Error(`config ${key}.minRemaining ${value.minRemaining} is not shorter than the window (${formatIn(durationMs(window))}): no deployment could start; shorten it`);
    }
    window.minRemaining = value.minRemaining as string;
  }
  return window;
}

/** Minutes in "1h30m", "45m", "2h"; undefined when it is not such a duration. */
function durationMinutes(text: string): number | undefined {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?$/.exec(text.trim());
  if (!m || (m[1] === undefined && m[2] === undefined)) return undefined;
  if (m[1] !== undefined && m[2] !== undefined && Number(m[2]) >= 60) return undefined; // "1h90m": say "2h30m"
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
}

function durationMs(w: MaintenanceWindow): number {
  const minutes = (minutesOf(w.end) - minutesOf(w.start) + 24 * 60) % (24 * 60);
  return minutes * MINUTE_MS;
}

/** Openings on the UTC days from `fromDay` (offset from today) for `count` days. */
function openings(w: MaintenanceWindow, now: Date, fromDay: number, count: number): Date[] {
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const result: Date[] = [];
  for (let i = fromDay; i < fromDay + count; i++) {
    const day = new Date(midnight + i * DAY_MS);
    if (w.days.includes(DAYS[day.getUTCDay()])) result.push(new Date(day.getTime() + minutesOf(w.start) * MINUTE_MS));
  }
  return result;
}

/** The open window containing `now` (opened yesterday and crossing midnight, or opened today). */
export function currentWindow(w: MaintenanceWindow, now: Date): { opensAt: Date; closesAt: Date } | undefined {
  for (const opensAt of openings(w, now, -1, 2)) {
    const closesAt = new Date(opensAt.getTime() + durationMs(w));
    if (opensAt.getTime() <= now.getTime() && now.getTime() < closesAt.getTime()) return { opensAt, closesAt };
  }
  return undefined;
}

export function isInsideWindow(w: MaintenanceWindow, now: Date): boolean {
  return currentWindow(w, now) !== undefined;
}

/** The first opening strictly after `now` (a window already open does not count). */
export function nextOpening(w: MaintenanceWindow, now: Date): Date {
  // Eight days cover every weekday once more even when today's opening has passed.
  const next = openings(w, now, 0, 8).find((o) => o.getTime() > now.getTime());
  if (!next) throw new Error("maintenance window has no days"); // parseWindow rules this out
  return next;
}

export function describeWindow(w: MaintenanceWindow): string {
  const nextDay = minutesOf(w.end) <= minutesOf(w.start) ? " (closes the next day)" : "";
  return `${w.days.join(",")} ${w.start}-${w.end} UTC${nextDay}${w.minRemaining ? `, starts with ${w.minRemaining} left at least` : ""}`;
}

function formatUtc(d: Date): string {
  return `${DAYS[d.getUTCDay()]} ${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function formatIn(ms: number): string {
  const minutes = Math.ceil(ms / MINUTE_MS);
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  return [d ? `${d}d` : "", h ? `${h}h` : "", m || (!d && !h) ? `${m}m` : ""].filter(Boolean).join(" ");
}

export interface WindowDecision {
  inside: boolean;
  message: string;
  /**
   * Set inside the window when less than its minRemaining is left: why no deployment may start
   * (`message` stays the plain one, for what may still run).
   */
  startRefusal?: string;
  /** ISO time of the next opening: when outside, or when too late to start. */
  nextOpening?: string;
  /** ISO time the current window closes, when inside. */
  closesAt?: string;
}

export function checkWindow(w: MaintenanceWindow, now: Date): WindowDecision {
  const open = currentWindow(w, now);
  if (open) {
    const left = open.closesAt.getTime() - now.getTime();
    // Whole minutes left, rounded down: "in 59m", never "in 1h" when 59.5 minutes are left.
    const closes = `it closes ${formatUtc(open.closesAt)} (in ${formatIn(Math.floor(left / MINUTE_MS) * MINUTE_MS)})`;
    const inside = { inside: true, closesAt: open.closesAt.toISOString(), message: `inside maintenance window ${describeWindow(w)}; ${closes}` };
    if (w.minRemaining !== undefined && left < durationMinutes(w.minRemaining)! * MINUTE_MS) {
      const next = nextOpening(w, now);
      return {
        ...inside,
        nextOpening: next.toISOString(),
        startRefusal: `inside maintenance window ${describeWindow(w)} but ${closes}, less than minRemaining ${w.minRemaining}: too late to start a deployment; next opening ${formatUtc(next)}`,
      };
    }
    return inside;
  }
  const next = nextOpening(w, now);
  return {
    inside: false,
    nextOpening: next.toISOString(),
    message: `outside maintenance window ${describeWindow(w)} at ${formatUtc(now)}; next opening ${formatUtc(next)} (in ${formatIn(next.getTime() - now.getTime())})`,
  };
}
