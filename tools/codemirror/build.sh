#!/usr/bin/env bash
# Rebuild static/vendor/codemirror.js (+ codemirror.LICENSE.txt) from the
# versions pinned in package.json / package-lock.json.
#
#   tools/codemirror/build.sh
#
# Needs Node >= 18 and npm. Deterministic: the same lockfile gives a
# byte-identical bundle.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT_DIR="$ROOT/static/vendor"
OUT="$OUT_DIR/codemirror.js"
LICENSE_OUT="$OUT_DIR/codemirror.LICENSE.txt"

cd "$HERE"

# Exact install from the lockfile. No install scripts are needed: esbuild's
# platform binary comes from its @esbuild/<platform> optional dependency.
npm ci --ignore-scripts --no-audit --no-fund

mkdir -p "$OUT_DIR"
META="$(mktemp)"
trap 'rm -f "$META"' EXIT

# Versions of the packages the page depends on, for the banner and license.
VERSIONS="$(node -e '
  const pkgs = ["codemirror", "@codemirror/state", "@codemirror/view",
    "@codemirror/language", "@codemirror/commands", "@codemirror/lint",
    "@codemirror/lang-python", "@codemirror/lang-json"];
  console.log(pkgs.map(p => p + "@" + require("./node_modules/" + p + "/package.json").version).join(" "));
')"

./node_modules/.bin/esbuild entry.js \
  --bundle \
  --format=esm \
  --target=es2020 \
  --platform=browser \
  --minify \
  --legal-comments=none \
  --banner:js="/* CodeMirror 6 (MIT, see codemirror.LICENSE.txt): $VERSIONS. Built by tools/codemirror/build.sh; do not edit. */" \
  --metafile="$META" \
  --log-level=warning \
  --outfile="$OUT"

# License file: header with versions, CodeMirror's MIT license text, then
# every package that actually ended up in the bundle (from esbuild's metafile).
node - "$META" "$VERSIONS" > "$LICENSE_OUT" <<'JS'
const fs = require("fs");
const path = require("path");
const [meta, versions] = process.argv.slice(2);
const inputs = Object.keys(JSON.parse(fs.readFileSync(meta, "utf8")).inputs);
const names = new Set();
for (const f of inputs) {
  const m = f.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) names.add(m[1]);
}
const nm = (p) => path.join("node_modules", p);
const lines = [];
lines.push(`Bundled in static/vendor/codemirror.js: ${versions}`);
lines.push("");
lines.push(fs.readFileSync(path.join(nm("codemirror"), "LICENSE"), "utf8").trimEnd());
lines.push("");
lines.push("-".repeat(72));
lines.push("All packages included in the bundle (each under the MIT license above,");
lines.push("with the copyright notice given by its own LICENSE file):");
lines.push("");
for (const name of [...names].sort()) {
  const pkg = JSON.parse(fs.readFileSync(path.join(nm(name), "package.json"), "utf8"));
  const lic = fs.readdirSync(nm(name)).find((f) => /^licen[cs]e/i.test(f));
  const text = lic ? fs.readFileSync(path.join(nm(name), lic), "utf8") : "";
  const copyright = (text.match(/^.*copyright.*$/im) || ["(no copyright line)"])[0].trim();
  lines.push(`  ${name}@${pkg.version} (${pkg.license}): ${copyright}`);
}
process.stdout.write(lines.join("\n") + "\n");
JS

echo "wrote $OUT ($(wc -c < "$OUT") bytes, $(gzip -9n < "$OUT" | wc -c) gzipped)"
echo "wrote $LICENSE_OUT"
