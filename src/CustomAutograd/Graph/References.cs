// SPDX-License-Identifier: MIT
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// Identity lookups (TorchSharp's Tensor.Equals compares values, so lists are searched by reference).
internal static class References
{
    // Position of tensor in tensors by reference, or -1.
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
