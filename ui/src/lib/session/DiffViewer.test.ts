import { flushSync, mount, unmount } from "svelte";
import { afterEach, describe, expect, it } from "vitest";

import DiffViewer from "./DiffViewer.svelte";
import { delta, hunkDeltas, session as events } from "./events.fixture";
import { BLOCK, Session } from "./session.svelte";

let mounted: ReturnType<typeof mount> | null = null;
afterEach(() => {
  if (mounted) unmount(mounted);
  mounted = null;
  document.body.innerHTML = "";
});

function view(session: Session): HTMLElement {
  const target = document.createElement("div");
  document.body.append(target);
  mounted = mount(DiffViewer, { target, props: { session } });
  flushSync();
  return target;
}

const rows = (root: HTMLElement) => [...root.querySelectorAll<HTMLTableRowElement>('[data-testid="diff-line"]')];

describe("DiffViewer", () => {
  it("adds one row per streamed line and leaves the rows already shown untouched", () => {
    const session = new Session();
    const root = view(session);
    session.apply({ kind: "model_started", iteration: 1, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    session.apply(delta(1, { type: "file", path: "cache.py" }));
    session.apply(delta(1, { type: "hunk", hunk: 0 }));
    flushSync();
    expect(rows(root)).toHaveLength(0);

    const seen: HTMLTableRowElement[] = [];
    // Past two blocks' worth of lines, so the rows of full blocks are checked too.
    const count = BLOCK * 2 + 50;
    for (let i = 0; i < count; i++) {
      session.apply(delta(1, { type: "line", hunk: 0, side: i < count / 2 ? "search" : "replace", text: `x = ${i}` }));
      flushSync();
      const now = rows(root);
      expect(now).toHaveLength(i + 1);
      // The same DOM nodes as before, in the same places: nothing was re-rendered.
      seen.forEach((row, j) => expect(now[j]).toBe(row));
      seen.push(now[i] as HTMLTableRowElement);
    }
    expect(rows(root)[0]?.classList.contains("search")).toBe(true);
    expect(rows(root)[count - 1]?.classList.contains("replace")).toBe(true);
    expect(rows(root)[count - 1]?.querySelector(".sign")?.textContent).toBe("+");
    expect(root.querySelectorAll("table.block")).toHaveLength(3);
    expect(root.querySelector('[data-testid="diff-pane"]')?.getAttribute("data-rows")).toBe(`${count}`);
    // Still streaming: the cursor shows, until the hunk ends.
    expect(root.querySelector(".cursor")).not.toBeNull();
    session.apply(delta(1, { type: "hunk_end", hunk: 0 }));
    flushSync();
    expect(root.querySelector(".cursor")).toBeNull();
    // Hundreds of checks of every row so far: seconds on a loaded 2-core machine, not a time limit.
  }, 60_000);

  it("highlights a line by its file's language and escapes what it shows", () => {
    const session = new Session();
    const root = view(session);
    session.apply({ kind: "model_started", iteration: 1, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    hunkDeltas(1, "cache.py", ["def evict(self):"], ['    return "<b>" if x else None']).forEach((e) => session.apply(e));
    flushSync();
    const [def, ret] = rows(root);
    expect(def?.querySelector(".hljs-keyword")?.textContent).toBe("def");
    expect(ret?.querySelector(".hljs-string")?.textContent).toBe('"<b>"');
    expect(ret?.querySelector("b")).toBeNull();
  });

  it("shows each answer's fate and what the model was told when it was rejected", () => {
    const session = new Session();
    const root = view(session);
    events.forEach((e) => session.apply(e));
    flushSync();
    const statuses = [...root.querySelectorAll('[data-testid="patch"]')].map((p) => p.getAttribute("data-status"));
    expect(statuses).toEqual(["rejected", "applied"]);
    expect(root.querySelector(".feedback pre")?.textContent).toContain("do not match");
    const tabs = [...root.querySelectorAll('[data-testid="diff-tab"]')].map((t) => t.textContent?.trim());
    expect(tabs).toEqual(["cache.py 2"]);
  });

  it("follows the file being patched, until a tab is picked", () => {
    const session = new Session();
    const root = view(session);
    session.apply({ kind: "model_started", iteration: 1, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    hunkDeltas(1, "a.py", ["a"], ["b"]).forEach((e) => session.apply(e));
    session.apply({ kind: "model_started", iteration: 2, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    hunkDeltas(2, "b.py", ["c"], ["d"]).forEach((e) => session.apply(e));
    flushSync();
    const selected = () => root.querySelector('[aria-selected="true"]')?.textContent?.trim();
    expect(selected()).toBe("b.py 1");

    root.querySelector<HTMLButtonElement>('[data-testid="diff-tab"]')?.click();
    flushSync();
    expect(selected()).toBe("a.py 1");
    session.apply({ kind: "model_started", iteration: 3, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    hunkDeltas(3, "b.py", ["e"], ["f"]).forEach((e) => session.apply(e));
    flushSync();
    expect(selected()).toBe("a.py 1");
    expect(rows(root).map((r) => r.querySelector(".code")?.textContent)).toEqual(["a", "b"]);
  });
});
