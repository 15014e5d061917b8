// SPDX-License-Identifier: MIT
using System;
using System.Collections;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// Finds tensors where a node's managed state would hold them strongly. A node owns its managed state, so a tensor
// there whose graph leads back to the node is a cycle through native memory that neither garbage collector can
// see (docs: "never keep an output tensor in managed state"; save it as a saved variable instead).
internal static class TensorSearch
{
    private const int MaxDepth = 4;

    // Whether value is a tensor, or a tuple or collection that holds one.
    internal static bool Contains(object? value) => Contains(value, 0);

    private static bool Contains(object? value, int depth)
    {
        switch (value)
        {
            case null:
            case string:
                return false;
            case Tensor:
                return true;
        }
        if (depth >= MaxDepth)
            return false;
        if (value is ITuple tuple)
        {
            for (int i = 0; i < tuple.Length; i++)
            {
                if (Contains(tuple[i], depth + 1))
                    return true;
            }
            return false;
        }
        // Collections whose elements could be tensors (not double[], List<int> ...): arrays and IEnumerable<T>.
        if (value is IEnumerable items && MayHoldTensors(value.GetType()))
        {
            foreach (object? item in items)
            {
                if (Contains(item, depth + 1))
                    return true;
            }
        }
        return false;
    }

    private static bool MayHoldTensors(Type type)
    {
        Type? element = type.IsArray ? type.GetElementType() : null;
        if (element is null)
        {
            foreach (Type i in type.GetInterfaces())
            {
                if (i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>))
                {
                    element = i.GetGenericArguments()[0];
                    break;
                }
            }
        }
        return element is null || !element.IsValueType || typeof(ITuple).IsAssignableFrom(element);
    }
}
