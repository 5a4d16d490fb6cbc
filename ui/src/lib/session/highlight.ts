// Syntax highlighting for one line of a streamed patch. A line is highlighted alone, as it arrives: a
// string or comment that spans lines is not followed, which a live view can afford.

import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import go from "highlight.js/lib/languages/go";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import typescript from "highlight.js/lib/languages/typescript";

hljs.registerLanguage("bash", bash);
hljs.registerLanguage("go", go);
hljs.registerLanguage("javascript", javascript);
hljs.registerLanguage("json", json);
hljs.registerLanguage("python", python);
hljs.registerLanguage("rust", rust);
hljs.registerLanguage("typescript", typescript);

const byExtension: Record<string, string> = {
  py: "python",
  rs: "rust",
  js: "javascript",
  mjs: "javascript",
  cjs: "javascript",
  jsx: "javascript",
  ts: "typescript",
  tsx: "typescript",
  go: "go",
  json: "json",
  sh: "bash",
};

/** The highlighter's language for a file, or null to show it plain. */
export function languageOf(path: string | null): string | null {
  const extension = path?.split(".").pop()?.toLowerCase();
  return (extension && byExtension[extension]) || null;
}

/** The line as HTML: escaped, with highlight.js's `hljs-*` spans when the language is known. */
export function highlight(text: string, language: string | null): string {
  if (language === null) return escape(text);
  return hljs.highlight(text, { language, ignoreIllegals: true }).value;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
