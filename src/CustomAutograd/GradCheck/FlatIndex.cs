// SPDX-License-Identifier: MIT
namespace CustomAutograd;

// Row-major flat indices of a tensor's elements, as the Jacobians' rows and columns use them.
internal static class FlatIndex
{
    // The number of elements of a tensor of this shape (1 for a scalar).
    internal static long Numel(long[] shape)
    {
        long n = 1;
        foreach (long d in shape)
            n *= d;
        return n;
    }

    // The index per dimension of the element with row-major position flat.
    internal static long[] Unravel(long flat, long[] shape)
    {
        var index = new long[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            index[d] = shape[d] == 0 ? 0 : flat % shape[d];
            flat = shape[d] == 0 ? 0 : flat / shape[d];
        }
        return index;
    }
}
