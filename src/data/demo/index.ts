export { chanceLevel, majorityBaseline } from './chance.js';
export {
  DEMO_LABEL_WORDS,
  DEMO_TASKS,
  type DemoRow,
  type DemoSizes,
  type DemoTaskDef,
  demoTaskDef,
  formatDemoRow,
} from './demo-tasks.js';
export { demoPlainText, type PlainTextOptions } from './plain-text.js';
export type { SkillName } from './skills.js';
export {
  DEFAULT_DEMO_SEED,
  type DemoExample,
  type DemoSuite,
  type DemoSuiteOptions,
  type DemoTaskData,
  demoTaskNames,
  generateDemoSuite,
  generateDemoTask,
} from './suite.js';
export { writeDemoSuite } from './writer.js';
