// The routes as the settings page edits them: providers as rows, and each task's providers as one line
// ("local, cloud": first to last resort). Rust checks the result when it is saved.
import type { ProviderConfig, RoutesConfig } from "../bindings";

export type RouteRow = { task: string; order: string };
export type RoutesDraft = {
  providers: ProviderConfig[];
  routes: RouteRow[];
  /** Kept as they were: the page does not edit them. */
  retry: RoutesConfig["retry"];
  timeouts: RoutesConfig["timeouts"];
};

/** An order as typed: names split on commas or arrows, blanks dropped. */
export function parseOrder(text: string): string[] {
  return text
    .split(/,|→|->/)
    .map((name) => name.trim())
    .filter((name) => name !== "");
}

export function toDraft(config: RoutesConfig | null): RoutesDraft {
  if (config === null) {
    return { providers: [], routes: [{ task: "default", order: "" }], retry: undefined, timeouts: undefined };
  }
  return {
    providers: config.providers.map((p) => ({ ...p })),
    routes: Object.entries(config.routes).map(([task, names]) => ({ task, order: names.join(", ") })),
    retry: config.retry,
    timeouts: config.timeouts,
  };
}

/** The draft as routes to save; empty optional fields are left out, as a routes file leaves them. */
export function fromDraft(draft: RoutesDraft): RoutesConfig {
  const routes: Record<string, string[]> = {};
  for (const row of draft.routes) {
    const task = row.task.trim();
    if (task !== "") routes[task] = parseOrder(row.order);
  }
  const providers = draft.providers.map((p) => {
    const provider: ProviderConfig = {
      name: p.name.trim(),
      kind: p.kind,
      base_url: p.base_url.trim(),
      model: p.model.trim(),
    };
    if (p.api_key) provider.api_key = p.api_key;
    if (typeof p.context_window === "number" && p.context_window > 0) provider.context_window = p.context_window;
    if (p.price) provider.price = p.price;
    if (p.local !== undefined && p.local !== null) provider.local = p.local;
    return provider;
  });
  const config: RoutesConfig = { providers, routes };
  if (draft.retry) config.retry = draft.retry;
  if (draft.timeouts) config.timeouts = draft.timeouts;
  return config;
}

/** A provider to fill in: an OpenAI-compatible server on this machine. */
export function newProvider(taken: string[]): ProviderConfig {
  let name = "local";
  for (let i = 2; taken.includes(name); i++) name = `local-${i}`;
  return { name, kind: "openai", base_url: "http://127.0.0.1:8080/v1", model: "" };
}
