// SPDX-License-Identifier: MIT
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Reflection.Emit;
using TorchSharp;

namespace CustomAutograd.Tests;

/// <summary>The methods a compiled method calls (call, callvirt, newobj, ldftn), read from its IL.</summary>
internal static class IlCalls
{
    private static readonly OpCode[] OneByte = new OpCode[0x100], TwoByte = new OpCode[0x100];

    static IlCalls()
    {
        foreach (FieldInfo field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var op = (OpCode)field.GetValue(null)!;
            ushort value = unchecked((ushort)op.Value);
            if (value < 0x100)
                OneByte[value] = op;
            else if ((value & 0xFF00) == 0xFE00)
                TwoByte[value & 0xFF] = op;
        }
    }

    /// <summary>Every method and constructor declared by the types of an assembly, nested and generated ones included.</summary>
    internal static IEnumerable<MethodBase> DeclaredMethods(Assembly assembly)
    {
        const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance |
                                 BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (Type type in assembly.GetTypes())
        {
            foreach (MethodInfo m in type.GetMethods(All))
                yield return m;
            foreach (ConstructorInfo c in type.GetConstructors(All))
                yield return c;
        }
    }

    /// <summary>The methods <paramref name="method"/> calls, in IL order; tokens that do not resolve are skipped.</summary>
    internal static IEnumerable<MethodBase> Callees(MethodBase method)
    {
        byte[]? il;
        try
        {
            il = method.GetMethodBody()?.GetILAsByteArray();
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or BadImageFormatException)
        {
            il = null;
        }
        if (il is null)
            yield break;
        Type[]? typeArguments = method.DeclaringType is { IsGenericType: true } t ? t.GetGenericArguments() : null;
        Type[]? methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        int at = 0;
        while (at < il.Length)
        {
            OpCode op = il[at] == 0xFE ? TwoByte[il[++at]] : OneByte[il[at]];
            at++;
            if (op.OperandType == OperandType.InlineMethod)
            {
                MethodBase? callee = null;
                try
                {
                    callee = method.Module.ResolveMethod(BitConverter.ToInt32(il, at), typeArguments, methodArguments);
                }
                catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException)
                {
                }
                if (callee is not null)
                    yield return callee;
            }
            at += op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, at),
                _ => 4,
            };
        }
    }

    private static readonly ConcurrentDictionary<(MethodBase, int), string?> s_temporaryScalar = new();

    /// <summary>
    /// Whether calling <paramref name="method"/> makes a TorchSharp <see cref="Scalar"/> that the caller does not hold
    /// (Note [kept scalars]): the chain of calls through TorchSharp's IL down to the method that returns the Scalar,
    /// followed <paramref name="depth"/> calls deep; null when there is none.
    /// </summary>
    internal static string? TemporaryScalar(MethodBase method, int depth = 3)
    {
        if (method is MethodInfo { ReturnType: var r } && r == typeof(Scalar) ||
            method is ConstructorInfo && method.DeclaringType == typeof(Scalar))
            return Name(method);
        if (depth == 0 || method.Module.Assembly != typeof(Scalar).Assembly)
            return null;
        return s_temporaryScalar.GetOrAdd((method, depth), key =>
            Callees(key.Item1).Select(c => TemporaryScalar(c, key.Item2 - 1)).FirstOrDefault(w => w is not null) is { } why
                ? Name(key.Item1) + " -> " + why
                : null);
    }

    /// <summary>
    /// "Caller calls chain" for each call <paramref name="caller"/> makes into TorchSharp that makes a temporary
    /// <see cref="Scalar"/> (<see cref="TemporaryScalar"/>).
    /// </summary>
    internal static IEnumerable<string> TemporaryScalarCalls(MethodBase caller) =>
        Callees(caller)
            .Where(c => c.Module.Assembly == typeof(Scalar).Assembly)
            .Select(c => TemporaryScalar(c) is { } chain ? Name(caller) + " calls " + chain : null)
            .OfType<string>();

    /// <summary>Type.Method, for messages.</summary>
    internal static string Name(MethodBase m) => m.DeclaringType?.Name + "." + m.Name;
}
