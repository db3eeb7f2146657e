// What a call costs, as Lambda bills it (us-east-1, x86; docs: lambda-model.md section 8):
// $0.20 per million requests, and the billed duration (1 ms steps) × memory at $0.0000166667
// per GB-second. A cold call's billed duration includes its Init (since Aug 2025).

export const REQUEST_USD = 0.2 / 1_000_000;
export const GB_S_USD = 0.0000166667;

export function gbSeconds(memoryMb, ms) {
  return (memoryMb / 1024) * (ms / 1000);
}

/** A call's cost in USD, or null for one that never ran (throttled, refused) or is not over. */
export function callCost(inv) {
  if (inv.billed_duration_ms == null || !inv.memory_mb || !inv.environment) return null;
  return REQUEST_USD + gbSeconds(inv.memory_mb, inv.billed_duration_ms) * GB_S_USD;
}

/** Dollars with three significant digits, never in exponent form: $0.000000790. */
export function fmtUsd(value) {
  if (value == null || Number.isNaN(value)) return "–";
  if (value === 0) return "$0";
  return `$${value.toLocaleString("en-US", { maximumSignificantDigits: 3, maximumFractionDigits: 12 })}`;
}

/** Millionths of a dollar (µ$), which is also dollars per million calls: 0.790 µ$. */
export function fmtMicro(value) {
  if (value == null || Number.isNaN(value)) return "–";
  const micro = value * 1_000_000;
  return `${micro >= 100 ? micro.toFixed(0) : micro.toPrecision(3)} µ$`;
}

/** The calls the page shows, summed: how many ran, their GB-s and their cost. */
export function meter(model) {
  let calls = 0;
  let gbS = 0;
  let initGbS = 0;
  let usd = 0;
  for (const id of model.order) {
    const inv = model.get(id);
    const cost = callCost(inv);
    if (cost == null) continue;
    calls += 1;
    gbS += gbSeconds(inv.memory_mb, inv.billed_duration_ms);
    if (inv.cold && inv.init_duration_ms) initGbS += gbSeconds(inv.memory_mb, Math.ceil(inv.init_duration_ms));
    usd += cost;
  }
  return { calls, gbS, initGbS, usd };
}

export function meterText(model) {
  const m = meter(model);
  if (!m.calls) return "";
  const init = m.initGbS ? ` (Init ${m.initGbS.toPrecision(3)} GB-s of it)` : "";
  return `These ${m.calls.toLocaleString("en")} calls: ${m.gbS.toPrecision(3)} GB-s${init}, ${fmtUsd(m.usd)} on Lambda (us-east-1, x86, before the free tier)`;
}
