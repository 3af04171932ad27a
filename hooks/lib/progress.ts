/** Progress lines for operators, on stderr (stdout carries only the JSON result). */
export function progress(step: string): (msg: string) => void {
  const start = Date.now();
  return (msg: string) => {
    const secs = ((Date.now() - start) / 1000).toFixed(1);
    process.stderr.write(`[${step} +${secs}s] ${msg}\n`);
  };
}

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
