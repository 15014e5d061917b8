// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// The positional saved tensors, with an index error that says how many were saved.
internal sealed class SavedTensorList : IReadOnlyList<Tensor?>
{
    private readonly NodeState _state;
    private readonly Tensor?[] _saved;

    internal SavedTensorList(NodeState state, Tensor?[] saved)
    {
        _state = state;
        _saved = saved;
    }

    public int Count => _state.PositionalSaved;

    public Tensor? this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_state.PositionalSaved)
            {
                int n = _state.PositionalSaved;
                string saved = n == 0 ? "saved no tensor with ctx.SaveForBackward(...)" : n == 1 ? "saved 1 tensor (index 0)" : $"saved {n} tensors (indices 0 to {n - 1})";
                throw new ArgumentOutOfRangeException(
                    nameof(index), index, $"'{_state.Function.Name}': SavedTensors[{index}] does not exist: the Forward {saved}.");
            }
            return _saved[index];
        }
    }

    public IEnumerator<Tensor?> GetEnumerator()
    {
        for (int i = 0; i < _state.PositionalSaved; i++)
            yield return _saved[i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
