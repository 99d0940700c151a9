/**
 * Which etcd versions order a requested progress notification with the events of its stream: before
 * 3.4.31 and 3.5.13 the answer went out on a control channel that could overtake events etcd had already
 * committed (etcd #15220, fixed by #15237; a watch created from the past and synced without events
 * kept it unanswered until #17557). The watch cache moves its revision on such an answer only where it
 * is ordered.
 */
export function progressAnswersOrdered(version: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major !== 3) return major > 3;
  if (minor === 4) return patch >= 31;
  if (minor === 5) return patch >= 13;
  return minor > 5;
}
