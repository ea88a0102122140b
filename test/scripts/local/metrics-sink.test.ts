import { describe, expect, it } from 'vitest';
import { createMetricsSink, isEmfLine } from '../../../scripts/local/metrics-sink.ts';

// The shape Powertools' Metrics writes: one JSON.stringify'd object per flush, `_aws` first.
const emf = (name: string, value: number | number[]) =>
  JSON.stringify({
    _aws: { Timestamp: 1_700_000_000_000, CloudWatchMetrics: [{ Namespace: 'Transcribo/Storage', Dimensions: [['service']], Metrics: [{ Name: name, Unit: 'Count' }] }] },
    service: 'transcribo-storage',
    [name]: value,
  });

function sink() {
  const forwarded: Record<string, string> = { stdout: '', stderr: '' };
  let file = '';
  const s = createMetricsSink({ file: '/unused', forward: (text, stream) => (forwarded[stream] += text), append: (lines) => (file += lines) });
  return { s, forwarded, file: () => file };
}

describe('metrics sink', () => {
  it('knows an EMF line from a log line that merely mentions _aws', () => {
    expect(isEmfLine(emf('Requests', 1))).toBe(true);
    expect(isEmfLine(`  ${emf('Requests', [1, 2])}\r`)).toBe(true);
    expect(isEmfLine('{"level":"INFO","message":"_aws"}')).toBe(false);
    expect(isEmfLine('{"_aws":{"Timestamp":1}}')).toBe(false);
    expect(isEmfLine('{"_aws": oops')).toBe(false);
    expect(isEmfLine('GET /files 200')).toBe(false);
  });

  it('diverts EMF lines to the file and passes everything else through, in order, per stream', () => {
    const { s, forwarded, file } = sink();
    const log = '{"level":"INFO","message":"upload stored","fileId":"abc"}';
    s.write(`${log}\n${emf('Requests', 1)}\nServer ready: http://localhost:3002\n`, 'stdout');
    s.write(`warning: something\n${emf('Errors', 2)}\n`, 'stderr');
    expect(forwarded.stdout).toBe(`${log}\nServer ready: http://localhost:3002\n`);
    expect(forwarded.stderr).toBe('warning: something\n');
    expect(file()).toBe(`${emf('Requests', 1)}\n${emf('Errors', 2)}\n`);
  });

  it('puts lines split across chunks (even inside a character) back together, each stream on its own', () => {
    const { s, forwarded, file } = sink();
    const line = emf('Latency', [12.5, 40]);
    const bytes = Buffer.from(`${line}\nbonjour « é »\n`);
    const cut1 = 20;
    const cut2 = bytes.indexOf(Buffer.from('é')) + 1; // between the two bytes of é
    s.write(bytes.subarray(0, cut1), 'stdout');
    s.write('{"level":"WARN",', 'stderr'); // interleaved: another stream's partial line
    s.write(bytes.subarray(cut1, cut2), 'stdout');
    s.write('"message":"x"}\n', 'stderr');
    s.write(bytes.subarray(cut2), 'stdout');
    expect(file()).toBe(`${line}\n`);
    expect(forwarded.stdout).toBe('bonjour « é »\n');
    expect(forwarded.stderr).toBe('{"level":"WARN","message":"x"}\n');
  });

  it('shows a partial log line at once, and never mistakes its continuation for an EMF line', () => {
    const { s, forwarded, file } = sink();
    s.write('progress: ', 'stdout');
    expect(forwarded.stdout).toBe('progress: ');
    s.write(`${emf('Requests', 1)}\n`, 'stdout');
    expect(file()).toBe('');
    expect(forwarded.stdout).toBe(`progress: ${emf('Requests', 1)}\n`);
  });

  it('flushes what is held when the output ends', () => {
    const { s, forwarded, file } = sink();
    s.write(emf('Requests', 1), 'stdout');
    s.write('{"not":"finished"', 'stderr');
    expect(file()).toBe('');
    s.flush();
    expect(file()).toBe(`${emf('Requests', 1)}\n`);
    expect(forwarded.stderr).toBe('{"not":"finished"');
  });
});
