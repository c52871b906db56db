// Builds the web phone into dist/: the page (src/index.html, revalidated on every load) and its script and style
// with a content hash in their names (cached for a year). `make webapp` runs it after `npm ci` (package-lock.json
// pins JsSIP and esbuild); dist/ is committed, so `make install` needs no Node.js.
import { build } from "esbuild";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { basename } from "node:path";
import { createHash } from "node:crypto";

const here = new URL(".", import.meta.url).pathname;
const dist = `${here}dist`;
rmSync(dist, { recursive: true, force: true });
mkdirSync(`${dist}/assets`, { recursive: true });

const result = await build({
  entryPoints: { phone: `${here}src/phone.js`, "phone-style": `${here}src/phone.css` },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15"],
  entryNames: "[name]-[hash]",
  outdir: `${dist}/assets`,
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((n) => n.startsWith("phone-") && n.endsWith(".js") && !n.startsWith("phone-style"));
const css = outputs.find((n) => n.startsWith("phone-style") && n.endsWith(".css"));
const page = readFileSync(`${here}src/index.html`, "utf8")
  .replace("{{phone.js}}", `assets/${js}`)
  .replace("{{phone.css}}", `assets/${css}`);
writeFileSync(`${dist}/index.html`, page);

// the licences of the packages bundled into the script (JsSIP and what it uses), shipped next to it
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) packages.add(m[1]);
}
const notices = [...packages].sort().map((name) => {
  const dir = `${here}node_modules/${name}`;
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  const text = file && existsSync(`${dir}/${file}`) ? readFileSync(`${dir}/${file}`, "utf8").trim() : "(no licence file)";
  return `${name}\n${"=".repeat(name.length)}\n${text}\n`;
});
writeFileSync(`${dist}/assets/THIRD-PARTY-LICENSES.txt`, notices.join("\n"));

const lock = JSON.parse(readFileSync(`${here}package-lock.json`, "utf8"));
const version = (name) => lock.packages[`node_modules/${name}`].version;
// what the bundle was built from: a test compares it with the sources and the lockfile (a stale bundle fails)
const sources = createHash("sha256");
for (const f of readdirSync(`${here}src`).sort()) sources.update(`${f}\n`).update(readFileSync(`${here}src/${f}`));
const build_info = { jssip: version("jssip"), esbuild: version("esbuild"), sources: sources.digest("hex"), js, css };
writeFileSync(`${dist}/BUILD.json`, JSON.stringify(build_info, null, 2) + "\n");
console.log(`web phone built: dist/index.html, dist/assets/${js}, dist/assets/${css}`);
