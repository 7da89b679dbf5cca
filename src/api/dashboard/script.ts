import { dashboardClient } from './client.ts';

/**
 * /dashboard.js: the client's compiled source text, run once in the page. `__name` is the helper esbuild (tsx,
 * running from src/) calls to keep function names; in the browser it only has to hand its argument back.
 */
export const DASHBOARD_JS = `'use strict';\nvar __name = function (target) { return target; };\n(${dashboardClient.toString()})();\n`;
