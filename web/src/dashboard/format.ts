/** Numbers as the dashboard shows them. */

/** A byte count in binary units; "–" for none. */
export function bytes(n: number | null | undefined): string {
  if (n == null) {
    return "–";
  }
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${value.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** A number with thousands separators and at most `digits` decimals; "–" for none. */
export function num(n: number | null | undefined, digits = 0): string {
  return n == null || Number.isNaN(n) ? "–" : Number(n).toLocaleString("en", { maximumFractionDigits: digits });
}
