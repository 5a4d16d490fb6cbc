// How numbers read on every page.

/** A token count: exact below 10,000, then in thousands ("12.3k"). */
export const tokenCount = (n: number): string => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : `${n}`);
