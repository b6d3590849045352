// Ages in words, one rule for the page and taskctl (tools/taskctl/render.ts imports this file;
// age.d.ts types it there).

/** 75 → "1m15s"; 0.4 → "0s"; a negative age (clock skew) → "0s". */
export function age(seconds) {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return [d && `${d}d`, h && `${h}h`, m && `${m}m`, (s || (!d && !h && !m)) && `${s}s`]
    .filter(Boolean)
    .join('');
}
