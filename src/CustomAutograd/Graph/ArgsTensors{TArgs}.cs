// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Reflection;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// The tensors held by fields of a typed-arguments object (TArgs itself, or its instance
// fields of a tensor type, record and tuple fields included). Found once per type by reflection; types without
// such fields cost one static read per call.
internal static class ArgsTensors<TArgs>
{
    private static readonly FieldInfo[] Fields = FindFields();

    internal static bool MayHoldTensors { get; } = typeof(Tensor).IsAssignableFrom(typeof(TArgs)) || Fields.Length > 0;

    // The name of the field (or "the args object itself") that holds one of tensors (its position in index), or null.
    internal static string? FindHolder(TArgs args, Tensor[] tensors, out int index)
    {
        index = -1;
        if (args is null)
            return null;
        if (args is Tensor self && (index = References.IndexOf(tensors, self)) >= 0)
            return "the args object itself";
        foreach (FieldInfo field in Fields)
        {
            if (field.GetValue(args) is Tensor t && (index = References.IndexOf(tensors, t)) >= 0)
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
