// SPDX-License-Identifier: MIT
using System;
using System.Collections;
using System.Collections.Generic;
using System.Reflection;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace CustomAutograd.Interop;

/// <summary>
/// Finds tensors where a node's managed state would hold them strongly. A node owns its managed state, so a tensor
/// there whose graph leads back to the node is a cycle through native memory that neither garbage collector can
/// see (docs: "never keep an output tensor in managed state"; save it as a saved variable instead).
/// </summary>
internal static class TensorSearch
{
    private const int MaxDepth = 4;

    /// <summary>Whether <paramref name="value"/> is a tensor, or a tuple or collection that holds one.</summary>
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

/// <summary>
/// The tensors held by fields of a typed-arguments object (<typeparamref name="TArgs"/> itself, or its instance
/// fields of a tensor type, record and tuple fields included). Found once per type by reflection; types without
/// such fields cost one static read per call.
/// </summary>
internal static class ArgsTensors<TArgs>
{
    private static readonly FieldInfo[] Fields = FindFields();

    internal static bool MayHoldTensors { get; } = typeof(Tensor).IsAssignableFrom(typeof(TArgs)) || Fields.Length > 0;

    /// <summary>The name of the field (or "the args object itself") that holds one of <paramref name="tensors"/> (its position in <paramref name="index"/>), or null.</summary>
    internal static string? FindHolder(TArgs args, Tensor[] tensors, out int index)
    {
        index = -1;
        if (args is null)
            return null;
        if (args is Tensor self && (index = AutogradFunction.IndexOfReference(tensors!, self)) >= 0)
            return "the args object itself";
        foreach (FieldInfo field in Fields)
        {
            if (field.GetValue(args) is Tensor t && (index = AutogradFunction.IndexOfReference(tensors!, t)) >= 0)
                return DisplayName(field);
        }
        return null;
    }

    private static FieldInfo[] FindFields()
    {
        var found = new List<FieldInfo>();
        for (Type? type = typeof(TArgs); type is not null && type != typeof(object); type = type.BaseType)
        {
            foreach (FieldInfo field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if (typeof(Tensor).IsAssignableFrom(field.FieldType))
                    found.Add(field);
            }
        }
        return found.ToArray();
    }

    // A record's or auto-property's backing field is named "<Name>k__BackingField".
    private static string DisplayName(FieldInfo field)
    {
        string name = field.Name;
        return name.StartsWith('<') && name.IndexOf('>', StringComparison.Ordinal) is > 1 and int end ? name.Substring(1, end - 1) : name;
    }
}
