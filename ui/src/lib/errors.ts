import type { ErrorCode, IpcError } from "./bindings";

/** The pages a failure's remedy can be on. */
export type RemedyPage = "machine" | "settings";

/** The text a person reads for a failed command: what happened, then what to do next where the app knows. */
export function describeError(error: IpcError): string {
  return error.hint ? `${error.message}. ${capitalize(error.hint)}.` : error.message;
}

/**
 * Where the window can mend a failure, by its code: the button it offers beside the message. `null`
 * where the message itself is all there is to do (a value to correct, a run to wait for).
 */
export function remedy(code: ErrorCode): { label: string; page: RemedyPage } | null {
  switch (code) {
    case "engine_not_installed":
    case "engine_failed":
    case "no_model":
      return { label: "Open Setup: engines and models", page: "machine" };
    case "keychain_unavailable":
      return { label: "Open Settings: keys", page: "settings" };
    case "docker_unavailable":
      return { label: "Open Setup: system check", page: "machine" };
    case "invalid_input":
    case "not_found":
    case "busy":
    case "storage":
    case "model":
    case "github":
    case "download":
    case "cancelled":
    case "internal":
      return null;
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
