// SPDX-License-Identifier: MIT
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

/// <summary>Identity lookups (TorchSharp's <c>Tensor.Equals</c> compares values, so lists are searched by reference).</summary>
internal static class References
{
    /// <summary>Position of <paramref name="tensor"/> in <paramref name="tensors"/> by reference, or -1.</summary>
    internal static int IndexOf(Tensor?[] tensors, Tensor tensor)
    {
        for (int i = 0; i < tensors.Length; i++)
        {
            if (ReferenceEquals(tensors[i], tensor))
                return i;
        }
        return -1;
    }
}
