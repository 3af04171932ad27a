// The one place secrets are masked: the CLI's stdout/stderr, notifications, and the rehearsal's
// log. Masking is the last line of defence; steps never print a secret on purpose.

/** Variables named like these hold secrets (docs/safety.md): the database password, the admin
 * and API tokens, the notification webhook URL, AWS secret keys and session tokens. */
const SECRET_NAME = /PASSWORD|PASSWD|TOKEN|SECRET|PRIVATE_KEY|API_KEY|WEBHOOK_URL/i;
/** Shorter values are not masked: they would also hit ordinary words and digests in the output. */
const MIN_SECRET_LENGTH = 6;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Every secret the environment holds, in the forms it may appear in text (plain, URL-encoded,
 * JSON-escaped), longest first so that a secret containing another is replaced whole. */
export function secretsIn(env: NodeJS.ProcessEnv): string[] {
  const values = Object.entries(env).filter(([k, v]) => isSecretName(k) && v).map(([, v]) => v as string);
  try {
    const url = env.DATABASE_URL ? new URL(env.DATABASE_URL) : undefined;
    if (url?.password) values.push(url.password, decodeURIComponent(url.password));
  } catch {
    // An unparsable URL is reported by the step; the raw value is never printed.
  }
  const forms = values.flatMap((v) => [v, encodeURIComponent(v), JSON.stringify(v).slice(1, -1)]);
  return [...new Set(forms)].filter((v) => v.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

/** `text` with every one of `secrets` replaced by `mask`, and credentials inside URLs
 * (scheme://user:password@host) masked too. */
export function redact(text: string, secrets: Iterable<string>, mask = "***"): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s@/]*@/gi, `$1:${mask}@`);
  for (const s of secrets) out = out.split(s).join(mask);
  return out;
}
