// SPDX-License-Identifier: MIT
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// Per-thread reuse of the one-element arrays that a one-input function's Apply passes around internally
// (its inputs and its outputs), so the hot path allocates none. An array is taken out of its slot while in
// use, so a nested Apply on the same thread (a Forward applying another function) gets fresh arrays.
// These arrays never reach user code.
internal static class SingleTensorArrays
{
    [System.ThreadStatic]
    private static Tensor?[]? t_first;

    [System.ThreadStatic]
    private static Tensor?[]? t_second;

    internal static Tensor?[] Rent()
    {
        Tensor?[]? array = t_first;
        if (array is not null)
        {
            t_first = null;
            return array;
        }
        array = t_second;
        if (array is not null)
        {
            t_second = null;
            return array;
        }
        return new Tensor?[1];
    }

    internal static void Return(Tensor?[] array)
    {
        array[0] = null;
        if (t_first is null)
            t_first = array;
        else if (t_second is null)
            t_second = array;
    }
}
