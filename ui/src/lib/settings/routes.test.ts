import { describe, expect, it } from "vitest";

import type { RoutesConfig } from "../bindings";
import { fromDraft, newProvider, parseOrder, toDraft } from "./routes";

const config: RoutesConfig = {
  providers: [
    { name: "local", kind: "openai", base_url: "http://127.0.0.1:8080/v1", model: "qwen", context_window: 8192 },
    { name: "cloud", kind: "openai", base_url: "https://openrouter.ai/api/v1", model: "q32", api_key: "openrouter" },
  ],
  routes: { default: ["local", "cloud"], long_context: ["cloud"] },
  retry: { max_retries: 2, first_wait_ms: 500, max_wait_ms: 8000, max_retry_after_s: 60 },
};

describe("the routes editor's draft", () => {
  it("reads orders typed with commas or arrows, ignoring blanks", () => {
    expect(parseOrder("local, cloud")).toEqual(["local", "cloud"]);
    expect(parseOrder(" local → cloud -> spare ,, ")).toEqual(["local", "cloud", "spare"]);
    expect(parseOrder("  ")).toEqual([]);
  });

  it("gives back the routes it was made from, untouched fields included", () => {
    const draft = toDraft(config);
    expect(draft.routes).toEqual([
      { task: "default", order: "local, cloud" },
      { task: "long_context", order: "cloud" },
    ]);
    expect(fromDraft(draft)).toEqual(config);
  });

  it("does not change the routes it was made from while it is edited", () => {
    const draft = toDraft(config);
    draft.providers[0]!.model = "other";
    draft.routes[0]!.order = "cloud";
    expect(config.providers[0]!.model).toBe("qwen");
    expect(config.routes.default).toEqual(["local", "cloud"]);
  });

  it("leaves out empty optional fields and blank tasks, and trims what was typed", () => {
    const draft = toDraft(null);
    draft.providers.push({ ...newProvider([]), model: " m ", api_key: "", context_window: null });
    draft.routes[0]!.order = "local";
    draft.routes.push({ task: "  ", order: "local" });
    expect(fromDraft(draft)).toEqual({
      providers: [{ name: "local", kind: "openai", base_url: "http://127.0.0.1:8080/v1", model: "m" }],
      routes: { default: ["local"] },
    });
  });

  it("names a new provider so that it does not clash", () => {
    expect(newProvider(["local", "local-2"]).name).toBe("local-3");
  });
});
