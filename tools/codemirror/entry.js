// Entry point for static/vendor/codemirror.js (built by ./build.sh).
// Re-exports exactly what the LambdaLab page uses; add a name here and
// rebuild if the page ever needs more.
export { EditorView, basicSetup } from "codemirror";
export { EditorState, Compartment } from "@codemirror/state";
export { keymap } from "@codemirror/view";
export { indentWithTab } from "@codemirror/commands";
export { python } from "@codemirror/lang-python";
export { json, jsonParseLinter } from "@codemirror/lang-json";
export { linter, lintGutter, setDiagnostics } from "@codemirror/lint";
