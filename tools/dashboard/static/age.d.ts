/** 75 → "1m15s"; 0.4 → "0s"; a negative age (clock skew) → "0s". */
export function age(seconds: number): string;
