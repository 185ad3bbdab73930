import { describe, expect, it } from 'vitest';
import { campaignIdOf, isFullCampaignId, resolveCampaignId, shortIds } from '../../cli/ids.js';
import { isYes } from '../../cli/confirm.js';

/** Campaign ids people can type (issue 16): unique prefixes like git's, short ids in tables. */
const A = 'cmp_4f1c2a3b-0000-4000-8000-000000000001';
const B = 'cmp_4f1c2a3b-0000-4000-8000-000000000002';
const C = 'cmp_9a0b1c2d-1111-4111-8111-111111111111';
const known = [
  { id: A, name: 'canary', status: 'running', manifest: 'demo@2.0.0' },
  { id: B, name: null, status: 'completed', manifest: 'demo@1.0.0' },
  { id: C, name: 'eu', status: 'draft', manifest: 'demo@2.0.0' },
];

describe('campaign ids by prefix', () => {
  it('takes the exact id, or the one id a prefix starts, with or without cmp_, in any case', () => {
    expect(resolveCampaignId(A, known).id).toBe(A);
    expect(resolveCampaignId('9a0b', known).id).toBe(C);
    expect(resolveCampaignId('cmp_9A0B1', known).id).toBe(C);
    expect(resolveCampaignId('4f1c2a3b-0000-4000-8000-000000000002', known).id).toBe(B);
  });

  it('an ambiguous prefix lists every match (exit 2); none is exit 1; too short is exit 2', () => {
    let err: any;
    try {
      resolveCampaignId('4f1c', known);
    } catch (e) {
      err = e;
    }
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(`campaign id prefix cmp_4f1c is ambiguous: 2 campaigns match\n  ${A}  canary  demo@2.0.0  running\n  ${B}  demo@1.0.0  completed`);
    expect(() => resolveCampaignId('ffff', known)).toThrow(expect.objectContaining({ exitCode: 1, message: 'no campaign id starts with cmp_ffff' }));
    expect(() => resolveCampaignId('cmp_4f', known)).toThrow(expect.objectContaining({ exitCode: 2, message: 'campaign id "cmp_4f" is too short' }));
  });

  it('lists at most ten matches and counts the rest', () => {
    const many = Array.from({ length: 13 }, (_, i) => ({ id: `cmp_aaaa0000-0000-4000-8000-${String(i).padStart(12, '0')}` }));
    expect(() => resolveCampaignId('aaaa', many)).toThrow(/13 campaigns match\n(  cmp_.*\n){10}  … and 3 more$/);
  });

  it('does not ask the server for the list when the id is already whole', async () => {
    let asked = 0;
    const list = async () => (asked++, known);
    expect(isFullCampaignId(A)).toBe(true);
    expect(isFullCampaignId('cmp_4f1c')).toBe(false);
    expect(await campaignIdOf(A, list)).toBe(A);
    expect(asked).toBe(0);
    expect(await campaignIdOf('9a0b', list)).toBe(C);
    expect(asked).toBe(1);
  });

  it('short ids: 8 characters after cmp_, longer where two ids share more; other ids whole', () => {
    const s = shortIds([A, B, C, 'tok_x']);
    expect(s.get(C)).toBe('cmp_9a0b1c2d');
    // A and B share 39 characters: each needs the 40th to be told apart.
    expect(s.get(A)).toBe(A);
    expect(s.get(B)).toBe(B);
    expect(shortIds([A, C]).get(A)).toBe('cmp_4f1c2a3b');
    expect(shortIds(['cmp_4f1c2a3b-aaaa', 'cmp_4f1c2a3b-bbbb', 'cmp_4f1c2a3c-cccc'])).toEqual(new Map([
      ['cmp_4f1c2a3b-aaaa', 'cmp_4f1c2a3b-a'],
      ['cmp_4f1c2a3b-bbbb', 'cmp_4f1c2a3b-b'],
      ['cmp_4f1c2a3c-cccc', 'cmp_4f1c2a3c'],
    ]));
    expect(shortIds(['tok_x']).get('tok_x')).toBe('tok_x');
    // Every short id names its campaign back through the prefix rule.
    for (const [id, short] of shortIds([A, B, C])) expect(resolveCampaignId(short, known).id).toBe(id);
  });

  it('a confirmation is yes only when it says so', () => {
    for (const a of ['y', 'Y', 'yes', ' YES ']) expect(isYes(a)).toBe(true);
    for (const a of ['', 'n', 'no', 'yep', 'y es']) expect(isYes(a)).toBe(false);
  });
});
