import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, namesDeployedAs, parseConfig, SETTINGS } from '../../lib/config.ts';
import { METRIC, NAMESPACE } from '../../lib/observability/metric-names.ts';
import { GUIDE_ENV } from '../support/guide-env.ts';

/**
 * The alarms and the dashboard of `npm run package`'s CloudFormation: each alarm on the metric,
 * statistic and dimensions the functions emit (lib/observability/metric-names.ts), at the
 * threshold its setting says, notifying the alarm topic; the e-mail subscription only with the
 * `AlarmEmail` parameter; a dashboard with every alarm and a graph per group of metrics, naming
 * no metric the code does not emit. Packaged with non-default thresholds (and one left at its
 * default), in a copy of the project: serverless-package.test.ts packages the project itself,
 * maybe at the same time, and both would write .build/ and .serverless/.
 */

const root = resolve(import.meta.dirname, '..', '..');
const THRESHOLDS = {
  STORAGE_ALARM_ERROR_RATE_PERCENT: '2.5',
  STORAGE_ALARM_CAPACITY_BYTES: String(5 * 1024 ** 4),
  STORAGE_ALARM_CAPACITY_PERCENT: '90',
  STORAGE_ALARM_READ_LATENCY_MS: '1500',
  STORAGE_ALARM_PROCESSING_LATENCY_SECONDS: '300',
  STORAGE_ALARM_EMAIL: 'oncall@example.com',
  // STORAGE_ALARM_WAITING_UPLOAD_SECONDS unset: the template must get the schema's default.
};
const waitingDefault = SETTINGS.STORAGE_ALARM_WAITING_UPLOAD_SECONDS.parse(undefined);
const ALARMS = ['ErrorRateAlarm', 'StorageCapacityAlarm', 'ReadLatencyAlarm', 'ProcessingLatencyAlarm', 'DeadLettersAlarm', 'WaitingUploadAlarm'];
const METRIC_NAMES = new Set<string>(Object.values(METRIC));

let copy: string;
let template: any;

beforeAll(async () => {
  copy = mkdtempSync(join(tmpdir(), 'transcribo-package-'));
  for (const entry of ['package.json', 'serverless.yml', 'tsconfig.json', 'deploy', 'functions', 'lib', 'scripts']) {
    cpSync(join(root, entry), join(copy, entry), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('STORAGE_'))),
    ...GUIDE_ENV,
    ...THRESHOLDS,
  };
  await promisify(execFile)(process.execPath, ['scripts/package.ts'], { cwd: copy, env, maxBuffer: 16 << 20 });
  template = JSON.parse(readFileSync(join(copy, '.serverless', 'cloudformation-template-update-stack.json'), 'utf8'));
}, 180_000);

afterAll(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

const resources = () => template.Resources as Record<string, { Type: string; Condition?: string; Properties: any }>;
const alarm = (id: string) => resources()[id]!.Properties;
/** The service dimension and namespace the functions themselves are given. */
const functionEnv = () => resources().GetFileLambdaFunction!.Properties.Environment.Variables;
const service = () => functionEnv().POWERTOOLS_SERVICE_NAME as string;

interface MetricUse {
  namespace: string;
  name: string;
  dimensions: Record<string, unknown>;
  stat: string;
  period: number;
}

/** The metrics an alarm reads, a single metric or those of its metric math. */
function metricsOf(id: string): MetricUse[] {
  const p = alarm(id);
  const dims = (list: Array<{ Name: string; Value: unknown }>) => Object.fromEntries(list.map((d) => [d.Name, d.Value]));
  if (p.Metrics === undefined) {
    return [{ namespace: p.Namespace, name: p.MetricName, dimensions: dims(p.Dimensions), stat: p.Statistic ?? p.ExtendedStatistic, period: p.Period }];
  }
  return p.Metrics.filter((m: any) => m.MetricStat).map((m: any) => ({
    namespace: m.MetricStat.Metric.Namespace,
    name: m.MetricStat.Metric.MetricName,
    dimensions: dims(m.MetricStat.Metric.Dimensions),
    stat: m.MetricStat.Stat,
    period: m.MetricStat.Period,
  }));
}
/** The expression whose value the alarm compares (undefined for a single-metric alarm). */
const expressionOf = (id: string): string | undefined => alarm(id).Metrics?.find((m: any) => m.ReturnData !== false)?.Expression;

interface Widget {
  type: string;
  title?: string;
  properties: any;
}
let dashboardCache: { widgets: Widget[]; references: string[] } | undefined;
/** The dashboard body, with the references Fn::Sub fills in written as `<Resource.Attribute>`. */
function dashboard() {
  if (dashboardCache) return dashboardCache;
  const source: string = resources().Dashboard!.Properties.DashboardBody['Fn::Sub'];
  const references = [...source.matchAll(/\$\{([^}]+)\}/g)].map((m) => m[1]!);
  const body = JSON.parse(source.replace(/\$\{([^}]+)\}/g, '<$1>'));
  dashboardCache = { widgets: body.widgets, references };
  return dashboardCache;
}

interface GraphedMetric {
  namespace: string;
  name: string;
  stat: string;
  /** Dimension names (a search: the names it matches exactly), and values where fixed. */
  dimensions: Record<string, string | undefined>;
  search: boolean;
  title: string;
}
/** Every metric the dashboard's graphs draw, given one by one or found by a SEARCH expression. */
function graphedMetrics(): GraphedMetric[] {
  const found: GraphedMetric[] = [];
  for (const widget of dashboard().widgets.filter((w) => w.type === 'metric')) {
    const title = widget.properties.title as string;
    for (const entry of (widget.properties.metrics ?? []) as unknown[][]) {
      const [first] = entry;
      if (typeof first === 'object' && first !== null) {
        const expression = (first as { expression: string }).expression;
        const search = /^SEARCH\('\{([^}]*)\}\s+MetricName="([^"]+)"([^']*)',\s*'([^']+)',\s*(\d+)\)$/.exec(expression);
        if (!search) continue;
        const [namespace, ...names] = search[1]!.split(',');
        const fixed = Object.fromEntries([...search[3]!.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
        found.push({
          namespace: namespace!,
          name: search[2]!,
          stat: search[4]!,
          dimensions: Object.fromEntries(names.map((n) => [n, fixed[n]])),
          search: true,
          title,
        });
        continue;
      }
      const options = typeof entry.at(-1) === 'object' ? (entry.at(-1) as { stat?: string }) : {};
      const pairs = entry.slice(2, typeof entry.at(-1) === 'object' ? -1 : undefined) as string[];
      const dimensions: Record<string, string> = {};
      for (let i = 0; i < pairs.length; i += 2) dimensions[pairs[i]!] = pairs[i + 1]!;
      found.push({ namespace: first as string, name: entry[1] as string, stat: options.stat ?? widget.properties.stat, dimensions, search: false, title });
    }
  }
  return found;
}

describe('the monitoring of npm run package', () => {
  it('resolves every alarm setting, set or left at its default, and gives the functions none of them', () => {
    expect(namesDeployedAs('resolved').filter((name) => name.startsWith('STORAGE_ALARM_')).sort()).toEqual(
      [...Object.keys(THRESHOLDS), 'STORAGE_ALARM_WAITING_UPLOAD_SECONDS'].sort(),
    );
    for (const [name, r] of Object.entries(resources()).filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
      expect(Object.keys(r.Properties.Environment.Variables).filter((v) => v.startsWith('STORAGE_ALARM_')), name).toEqual([]);
    }
  });

  it('checks the thresholds as every setting is checked, naming the variable', () => {
    const bad: Array<[string, string]> = [
      ['STORAGE_ALARM_ERROR_RATE_PERCENT', '0'],
      ['STORAGE_ALARM_CAPACITY_PERCENT', '101'],
      ['STORAGE_ALARM_CAPACITY_BYTES', '1.5'],
      ['STORAGE_ALARM_READ_LATENCY_MS', '30000'],
      ['STORAGE_ALARM_PROCESSING_LATENCY_SECONDS', '901'],
      ['STORAGE_ALARM_WAITING_UPLOAD_SECONDS', 'soon'],
    ];
    for (const [name, value] of bad) {
      expect(() => parseConfig({ [name]: value }), name).toThrow(ConfigError);
      expect(() => parseConfig({ [name]: value }), name).toThrow(name);
    }
    expect(() => parseConfig({ ...THRESHOLDS, STORAGE_ALARM_ERROR_RATE_PERCENT: '0.5' })).not.toThrow();
  });

  it('reads the metrics where the functions write them: their namespace and service, operations named as the functions are', () => {
    expect(functionEnv().POWERTOOLS_METRICS_NAMESPACE).toBe(NAMESPACE);
    expect(service()).toBe('transcribo-storage');
    for (const operation of ['getFile', 'processUpload']) {
      expect(resources(), operation).toHaveProperty(`${operation[0]!.toUpperCase()}${operation.slice(1)}LambdaFunction`);
    }
  });

  it('has the six alarms, each on its metric, statistic and dimensions, at the configured threshold', () => {
    const ids = Object.entries(resources()).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm').map(([id]) => id);
    expect(ids.sort()).toEqual([...ALARMS].sort());
    const svc = { service: service() };
    const ours = (name: string, stat: string, dimensions: Record<string, unknown> = svc): MetricUse => ({ namespace: NAMESPACE, name, dimensions, stat, period: 300 });

    // Error rate: errors over calls, all operations, three 5-minute periods in a row; no calls is no alarm.
    expect(metricsOf('ErrorRateAlarm')).toEqual([ours(METRIC.errors, 'Sum'), ours(METRIC.requests, 'Sum')]);
    expect(expressionOf('ErrorRateAlarm')).toBe('100 * FILL(errors, 0) / requests');
    expect(Number(alarm('ErrorRateAlarm').Threshold)).toBe(2.5);
    expect(alarm('ErrorRateAlarm')).toMatchObject({ EvaluationPeriods: 3, DatapointsToAlarm: 3, TreatMissingData: 'notBreaching' });

    // Capacity: the percentage of the configured capacity used, over the configured percentage.
    expect(metricsOf('StorageCapacityAlarm')).toEqual([ours(METRIC.storageUsed, 'Maximum')]);
    expect(expressionOf('StorageCapacityAlarm')).toBe(`100 * used / ${5 * 1024 ** 4}`);
    expect(Number(alarm('StorageCapacityAlarm').Threshold)).toBe(90);

    expect(metricsOf('ReadLatencyAlarm')).toEqual([ours(METRIC.latency, 'p95', { ...svc, operation: 'getFile' })]);
    expect(expressionOf('ReadLatencyAlarm')).toBeUndefined();
    expect(Number(alarm('ReadLatencyAlarm').Threshold)).toBe(1500);
    expect(alarm('ReadLatencyAlarm')).toMatchObject({ EvaluationPeriods: 3, DatapointsToAlarm: 3, TreatMissingData: 'notBreaching' });

    // Latency is in milliseconds, the setting in seconds.
    expect(metricsOf('ProcessingLatencyAlarm')).toEqual([ours(METRIC.latency, 'p95', { ...svc, operation: 'processUpload' })]);
    expect(expressionOf('ProcessingLatencyAlarm')).toBe('p95ms / 1000');
    expect(Number(alarm('ProcessingLatencyAlarm').Threshold)).toBe(300);

    expect(metricsOf('DeadLettersAlarm')).toEqual([
      { namespace: 'AWS/SQS', name: 'ApproximateNumberOfMessagesVisible', dimensions: { QueueName: { 'Fn::GetAtt': ['DeadLetterQueue', 'QueueName'] } }, stat: 'Maximum', period: 300 },
    ]);
    expect(resources().DeadLetterQueue!.Type).toBe('AWS::SQS::Queue');
    expect(alarm('DeadLettersAlarm')).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 1 });

    expect(metricsOf('WaitingUploadAlarm')).toEqual([ours(METRIC.oldestWaitingUpload, 'Maximum')]);
    expect(Number(alarm('WaitingUploadAlarm').Threshold)).toBe(waitingDefault);

    for (const id of ALARMS) {
      expect(alarm(id).ComparisonOperator, id).toBe('GreaterThanThreshold');
      // A threshold that restates no value of its own: a number, from the settings.
      expect(Number.isFinite(Number(alarm(id).Threshold)), id).toBe(true);
      expect(alarm(id).AlarmName, id).toMatch(/^transcribo-storage-dev-[a-z-]+$/);
      expect(alarm(id).AlarmDescription.length, id).toBeGreaterThan(80);
    }
  });

  it('names only metrics the code emits (lib/observability/metric-names.ts) in alarms and dashboard', () => {
    const used = [
      ...ALARMS.flatMap(metricsOf).filter((m) => m.namespace !== 'AWS/SQS'),
      ...graphedMetrics().filter((m) => m.namespace !== 'AWS/SQS'),
    ];
    expect(used.length).toBeGreaterThan(20);
    for (const m of used) {
      expect(m.namespace, m.name).toBe(NAMESPACE);
      expect(METRIC_NAMES.has(m.name), `${m.name} is not in METRIC`).toBe(true);
      expect(m.dimensions.service, m.name).toBe(service());
    }
  });

  it('notifies the alarm topic of every alarm, and back to OK; an e-mail subscribes only when AlarmEmail is given', () => {
    expect(resources().AlarmTopic!.Type).toBe('AWS::SNS::Topic');
    for (const id of ALARMS) {
      expect(alarm(id).AlarmActions, id).toEqual([{ Ref: 'AlarmTopic' }]);
      expect(alarm(id).OKActions, id).toEqual([{ Ref: 'AlarmTopic' }]);
    }
    const subscriptions = Object.values(resources()).filter((r) => r.Type === 'AWS::SNS::Subscription');
    expect(subscriptions).toEqual([
      { Type: 'AWS::SNS::Subscription', Condition: 'HasAlarmEmail', Properties: { TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: { Ref: 'AlarmEmail' } } },
    ]);
    expect(template.Conditions.HasAlarmEmail).toEqual({ 'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'AlarmEmail' }, ''] }] });
    const parameter = template.Parameters.AlarmEmail;
    // STORAGE_ALARM_EMAIL is packaged as the default, so a deploy (which passes no parameter values) keeps it.
    expect(parameter).toMatchObject({ Type: 'String', Default: 'oncall@example.com' });
    const pattern = new RegExp(parameter.AllowedPattern);
    expect(['', 'oncall@example.com'].every((v) => pattern.test(v))).toBe(true);
    expect(['oncall', 'on call@example.com'].some((v) => pattern.test(v))).toBe(false);
    expect(template.Outputs.AlarmTopicArn.Value).toEqual({ Ref: 'AlarmTopic' });
  });

  it('has a dashboard whose body is JSON, referring only to resources of the stack, with every alarm', () => {
    for (const reference of dashboard().references) {
      if (reference === 'AWS::Region') continue;
      const [id, attribute] = reference.split('.');
      expect(resources(), reference).toHaveProperty(id!);
      expect(['Arn', 'QueueName'], reference).toContain(attribute);
    }
    const widgets = dashboard().widgets;
    const status = widgets.filter((w) => w.type === 'alarm');
    expect(status).toHaveLength(1);
    expect(status[0]!.properties.alarms).toEqual(ALARMS.map((id) => `<${id}.Arn>`));
    for (const id of ALARMS) {
      const graphs = widgets.filter((w) => JSON.stringify(w.properties.annotations?.alarms) === JSON.stringify([`<${id}.Arn>`]));
      expect(graphs, id).toHaveLength(1);
      expect(graphs[0]!.properties.region).toBe('<AWS::Region>');
    }
    for (const w of widgets.filter((w) => w.type === 'metric')) expect(w.properties.region, w.properties.title).toBe('<AWS::Region>');
  });

  it('graphs each group of metrics', () => {
    const graphed = graphedMetrics();
    const has = (what: string, match: (m: GraphedMetric) => boolean) => expect(graphed.some(match), what).toBe(true);
    const perOperation = (m: GraphedMetric) => m.search && Object.keys(m.dimensions).sort().join() === 'operation,service';
    has('requests per operation', (m) => m.name === METRIC.requests && m.stat === 'Sum' && perOperation(m));
    has('errors per operation', (m) => m.name === METRIC.errors && m.stat === 'Sum' && perOperation(m));
    has('errors by type', (m) => m.name === METRIC.errorsByType && m.search && 'errorType' in m.dimensions);
    for (const p of ['p50', 'p95']) has(`latency ${p} per operation`, (m) => m.name === METRIC.latency && m.stat === p && perOperation(m));
    has('storage latency per command', (m) => m.name === METRIC.storageLatency && m.search && 'command' in m.dimensions);
    has('storage errors per command', (m) => m.name === METRIC.storageErrors && m.search && 'command' in m.dimensions);
    for (const name of [METRIC.bytesStored, METRIC.bytesRead]) has(name, (m) => m.name === name && m.stat === 'Sum');
    for (const stat of ['p10', 'p50', 'p90', 'Maximum']) has(`file size ${stat}`, (m) => m.name === METRIC.fileSize && m.stat === stat);
    for (const name of [METRIC.storageUsed, METRIC.storedFiles, METRIC.oldestWaitingUpload]) has(name, (m) => m.name === name && m.stat === 'Maximum');
    for (const name of [METRIC.uploadsReady, METRIC.uploadsRejected, METRIC.uploadsFailed, METRIC.uploadsExpired, METRIC.deadLetters]) {
      has(name, (m) => m.name === name && m.stat === 'Sum');
    }
    has('dead-letter queue depth', (m) => m.namespace === 'AWS/SQS' && m.name === 'ApproximateNumberOfMessagesVisible' && m.dimensions.QueueName === '<DeadLetterQueue.QueueName>');
    // The error rate, as the alarm computes it.
    const rate = dashboard().widgets.find((w) => w.properties.metrics?.some((e: any[]) => e[0]?.expression === expressionOf('ErrorRateAlarm')));
    expect(rate, 'error rate graph').toBeDefined();
    // And every metric the product emits has a graph: a new one without one fails here.
    const names = new Set(graphed.map((m) => m.name));
    expect([...METRIC_NAMES].filter((name) => !names.has(name))).toEqual([]);
  });
});
