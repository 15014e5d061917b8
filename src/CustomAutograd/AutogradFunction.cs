// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Native;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A differentiable operation defined by a Forward and a Backward delegate, joined to libtorch's own autograd
/// graph: the C# counterpart of PyTorch's <c>torch.autograd.Function</c>. Create one with a factory of this class
/// (<see cref="Create(string, Func{ForwardContext, Tensor, Tensor}, Func{BackwardContext, Tensor, Tensor?}, AutogradFunctionOptions?)"/>
/// and its overloads for two and three tensors, <see cref="CreateMulti"/> for any number, and the <c>WithArgs</c>
/// forms for typed non-tensor arguments), then call its <c>Apply</c> method. Function objects are immutable and
/// thread-safe: create them once and reuse them.
/// </summary>
public abstract class AutogradFunction
{
    private protected AutogradFunction(string name, AutogradFunctionOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        Options = options ?? AutogradFunctionOptions.Default;
        NativeName = NativeRuntime.Intern(name);
        Diagnostics.Log.FunctionCreated(name, Options);
    }

    /// <summary>The name used in every error message, log entry and metric about this function.</summary>
    public string Name { get; }

    /// <summary>The options the function was created with.</summary>
    public AutogradFunctionOptions Options { get; }

    /// <summary>
    /// Creates a function of one tensor with one tensor result.
    /// </summary>
    /// <param name="name">A name for error messages, e.g. "MyReLU".</param>
    /// <param name="forward">Computes the output; runs with grad mode off. Tensors it creates, other than its
    /// result and what it saves, are disposed when it returns.</param>
    /// <param name="backward">Given the gradient of the output, returns the gradient of the input (or null
    /// for none). The gradient is never null unless gradients are not materialised
    /// (<see cref="AutogradFunctionOptions.MaterializeGrads"/> false or <see cref="ForwardContext.SetMaterializeGrads"/>),
    /// in which case it is null when the output was not used: check for it.</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="UnaryFunction.Apply"/>.</returns>
    public static UnaryFunction Create(string name, Func<ForwardContext, Tensor, Tensor> forward,
                                       Func<BackwardContext, Tensor, Tensor?> backward,
                                       AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>Creates a function of two tensors with one tensor result.</summary>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the output from both inputs; runs with grad mode off.</param>
    /// <param name="backward">Given the output's gradient, returns both inputs' gradients (null for none).</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="BinaryFunction.Apply"/>.</returns>
    public static BinaryFunction Create(string name, Func<ForwardContext, Tensor, Tensor, Tensor> forward,
                                        Func<BackwardContext, Tensor, (Tensor? GradA, Tensor? GradB)> backward,
                                        AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Creates a function of three tensors, the third optional (null allowed), with one tensor result: the shape of
    /// PyTorch's <c>LinearFunction(input, weight, bias=None)</c>.
    /// </summary>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the output; the third input is null when Apply was given null.</param>
    /// <param name="backward">Given the output's gradient, returns the three inputs' gradients (null for none; it
    /// must be null for a null third input).</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="TernaryFunction.Apply"/>.</returns>
    public static TernaryFunction Create(string name, Func<ForwardContext, Tensor, Tensor, Tensor?, Tensor> forward,
                                         Func<BackwardContext, Tensor, (Tensor? GradA, Tensor? GradB, Tensor? GradC)> backward,
                                         AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Creates a function of any number of tensors with any number of tensor results.
    /// </summary>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the outputs; runs with grad mode off. It gets its own copy of the inputs, in
    /// Apply's order; inputs passed as null (optional inputs) arrive as null.</param>
    /// <param name="backward">Receives one gradient per output and returns one gradient per input (null
    /// meaning no gradient; extra trailing nulls are ignored).</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="MultiFunction.Apply"/>.</returns>
    public static MultiFunction CreateMulti(string name, Func<ForwardContext, Tensor?[], Tensor[]> forward,
                                            Func<BackwardContext, Tensor?[], Tensor?[]> backward,
                                            AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Creates a function of one tensor and typed non-tensor arguments (which get no gradient), e.g. a scale
    /// factor: <c>CreateWithArgs&lt;double&gt;("Scale", (ctx, x, s) =&gt; x * s, (ctx, g, s) =&gt; g * s)</c>.
    /// </summary>
    /// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the output from the input and the arguments; runs with grad mode off.</param>
    /// <param name="backward">Given the output's gradient and the same arguments, returns the input's gradient.</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="UnaryFunction{TArgs}.Apply"/>.</returns>
    public static UnaryFunction<TArgs> CreateWithArgs<TArgs>(string name, Func<ForwardContext, Tensor, TArgs, Tensor> forward,
                                                             Func<BackwardContext, Tensor, TArgs, Tensor?> backward,
                                                             AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>Creates a function of two tensors and typed non-tensor arguments (which get no gradient).</summary>
    /// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the output from both inputs and the arguments; runs with grad mode off.</param>
    /// <param name="backward">Given the output's gradient and the same arguments, returns both inputs' gradients.</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="BinaryFunction{TArgs}.Apply"/>.</returns>
    public static BinaryFunction<TArgs> CreateWithArgs<TArgs>(string name, Func<ForwardContext, Tensor, Tensor, TArgs, Tensor> forward,
                                                              Func<BackwardContext, Tensor, TArgs, (Tensor? GradA, Tensor? GradB)> backward,
                                                              AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Creates a function of three tensors (the third optional) and typed non-tensor arguments (which get no gradient).
    /// </summary>
    /// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the output; the third input is null when Apply was given null.</param>
    /// <param name="backward">Given the output's gradient and the same arguments, returns the three inputs' gradients.</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="TernaryFunction{TArgs}.Apply"/>.</returns>
    public static TernaryFunction<TArgs> CreateWithArgs<TArgs>(
        string name, Func<ForwardContext, Tensor, Tensor, Tensor?, TArgs, Tensor> forward,
        Func<BackwardContext, Tensor, TArgs, (Tensor? GradA, Tensor? GradB, Tensor? GradC)> backward,
        AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Creates a function of any number of tensors and typed non-tensor arguments (which get no gradient).
    /// </summary>
    /// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the outputs; runs with grad mode off. It gets its own copy of the inputs.</param>
    /// <param name="backward">One gradient per output in, one per tensor input out (null for none).</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="MultiFunction{TArgs}.Apply"/>.</returns>
    public static MultiFunction<TArgs> CreateMultiWithArgs<TArgs>(string name, Func<ForwardContext, Tensor?[], TArgs, Tensor[]> forward,
                                                                  Func<BackwardContext, Tensor?[], TArgs, Tensor?[]> backward,
                                                                  AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    // The function's name, interned in the native shim for its error messages.
    internal IntPtr NativeName { get; }

    // The guard node of AutogradFunctionOptions.OnceDifferentiable, made on first use.
    internal MultiFunction? DelayedError { get; set; }

    // Whether Apply accepts null at input index (an optional input).
    internal virtual bool AllowsNullInput(int index) => false;

    // Runs the user's Backward: one gradient per output in, one per Apply argument out.
    internal abstract Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads);
}
