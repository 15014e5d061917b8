// SPDX-License-Identifier: MIT
using System.Collections;
using System.Collections.Generic;

namespace CustomAutograd.Graph;

// A read-only list of flags (NeedsInputGrad). Lists of up to four flags are shared, immutable instances,
// so the hot path allocates none.
internal sealed class InputFlags : IReadOnlyList<bool>
{
    private const int CachedUpTo = 4;
    private static readonly InputFlags[][] Cache = BuildCache();

    private readonly bool[] _flags;

    private InputFlags(bool[] flags) => _flags = flags;

    public int Count => _flags.Length;

    public bool this[int index] => _flags[index];

    // Returns a list for count flags with bit i of bits as flag i;
    // beyond 64 flags use FromArray.
    internal static InputFlags FromBits(int count, ulong bits) =>
        count <= CachedUpTo ? Cache[count][bits] : FromArray(ToArray(count, bits));

    internal static InputFlags FromArray(bool[] flags) => new((bool[])flags.Clone());

    public IEnumerator<bool> GetEnumerator() => ((IEnumerable<bool>)_flags).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _flags.GetEnumerator();

    private static bool[] ToArray(int count, ulong bits)
    {
        var flags = new bool[count];
        for (int i = 0; i < count; i++)
            flags[i] = (bits & (1UL << i)) != 0;
        return flags;
    }

    private static InputFlags[][] BuildCache()
    {
        var cache = new InputFlags[CachedUpTo + 1][];
        for (int count = 0; count <= CachedUpTo; count++)
        {
            cache[count] = new InputFlags[1 << count];
            for (ulong bits = 0; bits < (1UL << count); bits++)
                cache[count][bits] = new InputFlags(ToArray(count, bits));
        }
        return cache;
    }
}
