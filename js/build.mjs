// Bundles the tuning UI into src/calab/static/ (widget.js + widget.css), shipped in the wheel.
import { build } from "esbuild";

// widget.js: the anywidget module; bridge.js: the standalone page served by calab.tune().
await build({
  entryPoints: { widget: "src/widget.ts", bridge: "src/bridge.ts" },
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: false,
  outdir: "../src/calab/static",
  logLevel: "info",
});
