// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>Saved tensors read by name: <c>ctx.Saved["x"]</c>.</summary>
public sealed class SavedTensors
{
    private readonly NodeState _state;
    private readonly Tensor?[] _saved;

    internal SavedTensors(NodeState state, Tensor?[] saved)
    {
        _state = state;
        _saved = saved;
    }

    /// <summary>The names saved by the Forward, in save order.</summary>
    public IReadOnlyList<string> Names => _state.SavedNames ?? (IReadOnlyList<string>)Array.Empty<string>();

    /// <summary>The tensor saved under <paramref name="name"/> (null if null was saved).</summary>
    /// <param name="name">The name given to SaveForBackward.</param>
    /// <exception cref="KeyNotFoundException">Nothing was saved under that name; the message lists what was.</exception>
    public Tensor? this[string name]
    {
        get
        {
            ArgumentNullException.ThrowIfNull(name);
            string[]? names = _state.SavedNames;
            if (names is not null)
            {
                for (int i = 0; i < names.Length; i++)
                {
                    if (string.Equals(names[i], name, StringComparison.Ordinal))
                        return _saved[_state.PositionalSaved + i];
                }
            }
            string known = names is null || names.Length == 0 ? "none" : "'" + string.Join("', '", names) + "'";
            throw new KeyNotFoundException(
                $"'{_state.Function.Name}': nothing was saved under the name '{name}' (saved names: {known}).");
        }
    }

    /// <summary>Whether a tensor was saved under <paramref name="name"/>.</summary>
    /// <param name="name">The name.</param>
    /// <returns>True if saved.</returns>
    public bool Contains(string name) => _state.SavedNames is { } n && Array.IndexOf(n, name) >= 0;
}
