// Bundles the tuning UI into src/calab/static/ (widget.js + widget.css), shipped in the wheel.
import { build } from "esbuild";

await build({
  entryPoints: ["src/widget.ts"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: false,
  outfile: "../src/calab/static/widget.js",
  logLevel: "info",
});
