/** Progress lines for operators, on stderr (stdout carries only the JSON result). */
export function progress(step: string): (msg: string) => void {
  const start = Date.now();
  return (msg: string) => {
    const secs = ((Date.now() - start) / 1000).toFixed(1);
    process.stderr.write(`[${step} +${secs}s] ${msg}\n`);
  };
}
