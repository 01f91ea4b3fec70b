// Unit tests of the dashboard's pure logic (formatting, grouping); the browser tests are e2e/.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { include: ["lib/**/*.test.ts"] },
});
