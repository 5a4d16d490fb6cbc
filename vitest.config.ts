import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vitest/config";

// UI unit tests: components mounted in jsdom, the stores driven by the same events the app receives.
export default defineConfig({
  plugins: [svelte()],
  // Svelte's browser build, so that mount() works in jsdom.
  resolve: { conditions: ["browser"] },
  test: { environment: "jsdom", include: ["ui/src/**/*.test.ts"] },
});
